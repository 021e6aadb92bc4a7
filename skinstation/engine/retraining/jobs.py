"""Training jobs as database rows, claimed and run by separate worker processes.

A job is ``queued`` when requested, ``running`` once a worker claims it (one transaction;
``SELECT ... FOR UPDATE SKIP LOCKED`` on PostgreSQL, an immediate write lock on SQLite, so two
workers never take the same job), and ``succeeded`` or ``failed`` at the end. The worker
heartbeats while it trains; a running job whose heartbeat is older than the lease lost its
worker (crash, kill, reboot) and is queued again, or failed after ``max_job_attempts``. All of
this is in the database, so job state survives restarts of the API and of the workers.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from skinstation.core.jsonvalues import finite_json
from skinstation.core.timeutil import utc_now
from skinstation.engine.audit import service as audit
from skinstation.engine.database import EngineDatabase
from skinstation.engine.errors import EngineError, NotFoundError
from skinstation.engine.models.models import ModelVersion
from skinstation.engine.retraining.models import JobState, TrainingJob
from skinstation.engine.retraining.schemas import JobOut


class JobLostError(EngineError):
    """The worker no longer owns the job (its lease expired and it was requeued)."""


def create_job(db: EngineDatabase, *, actor: str, params: dict[str, Any] | None = None) -> JobOut:
    """Queue a retraining job."""
    with db.transaction() as session:
        job = TrainingJob(state=JobState.QUEUED.value, requested_by=actor,
                          requested_at=utc_now(), params=dict(params or {}), attempts=0,
                          report={})
        session.add(job)
        session.flush()
        audit.record(session, actor, "training_job.created", "training_job", job.id, job.params)
        return _info(job, None)


def claim_next(db: EngineDatabase, worker: str) -> JobOut | None:
    """Take the oldest queued job for ``worker`` (``None`` if there is none)."""
    with db.transaction() as session:
        job = session.scalar(
            select(TrainingJob)
            .where(TrainingJob.state == JobState.QUEUED.value)
            .order_by(TrainingJob.id)
            .limit(1)
            .with_for_update(skip_locked=True)
        )
        if job is None:
            return None
        now = utc_now()
        job.state, job.worker, job.started_at, job.heartbeat_at = (
            JobState.RUNNING.value, worker, now, now)
        job.attempts += 1
        job.error = None
        audit.record(session, f"worker:{worker}", "training_job.started", "training_job", job.id,
                     {"attempt": job.attempts})
        return _info(job, None)


def heartbeat(db: EngineDatabase, job_id: int, worker: str) -> None:
    """Report that ``worker`` is still running the job.

    Raises:
        JobLostError: The job was requeued or finished meanwhile.
    """
    with db.transaction() as session:
        job = _job(session, job_id)
        if job.state != JobState.RUNNING or job.worker != worker:
            raise JobLostError(f"training job {job_id} is no longer owned by {worker}")
        job.heartbeat_at = utc_now()


def finish(
    db: EngineDatabase,
    job_id: int,
    worker: str,
    *,
    succeeded: bool,
    outcome: str | None = None,
    report: dict[str, Any] | None = None,
    error: str | None = None,
) -> JobOut:
    """Record the end of a job the worker owns.

    Raises:
        JobLostError: The worker no longer owns it.
    """
    with db.transaction() as session:
        job = _job(session, job_id)
        if job.state != JobState.RUNNING or job.worker != worker:
            raise JobLostError(f"training job {job_id} is no longer owned by {worker}")
        job.state = (JobState.SUCCEEDED if succeeded else JobState.FAILED).value
        job.finished_at, job.outcome = utc_now(), outcome
        job.report = finite_json(report or {})
        job.error = None if error is None else error[-4000:]
        audit.record(session, f"worker:{worker}", f"training_job.{job.state}", "training_job",
                     job.id, {"outcome": outcome, "error": job.error})
        return _info(job, _candidate(session, job.id))


def requeue_stale(db: EngineDatabase, *, now: datetime | None = None) -> list[int]:
    """Queue again (or fail) running jobs whose worker stopped reporting.

    Returns:
        Ids of the jobs found stale.
    """
    settings = db.settings.engine
    now = now or utc_now()
    cutoff = now - timedelta(seconds=settings.job_lease_seconds)
    stale: list[int] = []
    with db.transaction() as session:
        jobs = session.scalars(select(TrainingJob).where(
            TrainingJob.state == JobState.RUNNING.value, TrainingJob.heartbeat_at < cutoff))
        for job in jobs:
            stale.append(job.id)
            lost = f"worker {job.worker} stopped reporting (last heartbeat {job.heartbeat_at})"
            if job.attempts >= settings.max_job_attempts:
                job.state, job.finished_at = JobState.FAILED.value, now
                job.error = f"{lost}; gave up after {job.attempts} attempts"
            else:
                job.state, job.error = JobState.QUEUED.value, lost
            job.worker = None
            audit.record(session, "engine", f"training_job.lost_worker.{job.state}",
                         "training_job", job.id, {"attempts": job.attempts})
    return stale


def get_job(db: EngineDatabase, job_id: int) -> JobOut:
    """One job.

    Raises:
        NotFoundError: No such job.
    """
    with db.transaction() as session:
        job = _job(session, job_id)
        return _info(job, _candidate(session, job.id))


def list_jobs(db: EngineDatabase, limit: int = 100) -> list[JobOut]:
    """The newest jobs first."""
    with db.transaction() as session:
        jobs = session.scalars(select(TrainingJob).order_by(TrainingJob.id.desc()).limit(limit))
        return [_info(job, _candidate(session, job.id)) for job in jobs]


def _job(session: Session, job_id: int) -> TrainingJob:
    job = session.get(TrainingJob, job_id)
    if job is None:
        raise NotFoundError(f"training job {job_id} does not exist")
    return job


def _candidate(session: Session, job_id: int) -> str | None:
    return session.scalar(select(ModelVersion.version).where(ModelVersion.job_id == job_id))


def _info(job: TrainingJob, candidate: str | None) -> JobOut:
    return JobOut(job_id=job.id, state=job.state, requested_by=job.requested_by,
                  requested_at=job.requested_at, params=dict(job.params), attempts=job.attempts,
                  worker=job.worker, started_at=job.started_at, heartbeat_at=job.heartbeat_at,
                  finished_at=job.finished_at, outcome=job.outcome, candidate_version=candidate,
                  report=dict(job.report or {}), error=job.error)
