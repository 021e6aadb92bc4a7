"""The retraining worker: a separate process that claims queued jobs and runs them.

``skinstation engine worker`` loops: requeue jobs whose worker died, claim the oldest queued
job, run it while a background thread heartbeats, record the outcome. Any number of workers
may run against one database; each job is claimed by exactly one. Killing a worker (even with
``kill -9``) loses nothing: its job's heartbeat stops and the job is queued again once the
lease (``engine.job_lease_seconds``) has passed. Once a day the loop also erases the captures
older than ``engine.retention_years`` (when set).
"""

from __future__ import annotations

import os
import shutil
import socket
import sys
import threading
import traceback
from collections.abc import Callable
from datetime import timedelta

from skinstation.core.timeutil import utc_now
from skinstation.engine.database import EngineDatabase
from skinstation.engine.errors import EngineError
from skinstation.engine.ingest.service import sweep_orphan_images
from skinstation.engine.patients.service import apply_retention
from skinstation.engine.retraining.jobs import (
    JobLostError,
    claim_next,
    finish,
    heartbeat,
)
from skinstation.engine.retraining.jobs import requeue_stale as requeue_stale_jobs
from skinstation.engine.retraining.schemas import JobOut
from skinstation.engine.retraining.service import run_job

Log = Callable[[str], None]
RETENTION_INTERVAL = timedelta(days=1)


def default_worker_name() -> str:
    """``host:pid`` of this process."""
    return f"{socket.gethostname()}:{os.getpid()}"


def stderr_log(message: str) -> None:
    """Log one line to stderr."""
    print(message, file=sys.stderr, flush=True)


class Worker:
    """Claims and runs training jobs.

    Args:
        db: The engine database.
        name: Worker identity recorded on the jobs it runs.
        log: Where progress lines go (also written to the job's ``log.txt``).
    """

    def __init__(self, db: EngineDatabase, *, name: str | None = None,
                 log: Log = stderr_log) -> None:
        self.db = db
        self.name = name or default_worker_name()
        self.log = log
        lease = db.settings.engine.job_lease_seconds
        self.heartbeat_seconds = max(0.2, min(30.0, lease / 4))

    def run_once(self) -> JobOut | None:
        """Requeue stale jobs, then claim and run one job; ``None`` if none was queued."""
        for job_id in requeue_stale_jobs(self.db):
            self.log(f"training job {job_id} lost its worker; requeued or failed")
        job = claim_next(self.db, self.name)
        if job is None:
            return None
        return self._run(job)

    def run(self, stop: threading.Event, *, poll_seconds: float = 5.0,
            until_idle: bool = False) -> int:
        """Run jobs until ``stop`` is set (or, with ``until_idle``, until none is queued).

        Returns:
            How many jobs were run.
        """
        done = 0
        last_sweep = last_retention = utc_now() - timedelta(days=2)
        while not stop.is_set():
            if utc_now() - last_retention >= RETENTION_INTERVAL:
                self.apply_retention()
                last_retention = utc_now()
            if utc_now() - last_sweep > timedelta(minutes=10):
                removed = sweep_orphan_images(self.db)
                if removed:
                    self.log(f"removed {removed} orphan image file(s)")
                last_sweep = utc_now()
            finished = self.run_once()
            if finished is not None:
                done += 1
                continue
            if until_idle:
                break
            stop.wait(poll_seconds)
        return done

    def apply_retention(self) -> None:
        """Erase captures older than ``engine.retention_years`` (a failure is only logged)."""
        try:
            erased = apply_retention(self.db, utc_now())
        except Exception as error:  # keep serving jobs; tried again the next day
            self.log(f"retention failed: {error!r}")
            return
        if erased is not None:
            self.log(f"retention erased {erased.captures} capture(s) older than "
                     f"{self.db.settings.engine.retention_years} year(s)")

    def _run(self, job: JobOut) -> JobOut | None:
        job_dir = self.db.paths.jobs / f"job-{job.job_id}"
        job_dir.mkdir(parents=True, exist_ok=True)
        lost = threading.Event()
        done = threading.Event()
        log_file = open(job_dir / "log.txt", "a", encoding="utf-8")  # noqa: SIM115

        def job_log(message: str) -> None:
            if lost.is_set():
                raise JobLostError(f"training job {job.job_id} was taken from this worker")
            log_file.write(message + "\n")
            log_file.flush()
            self.log(f"[job {job.job_id}] {message}")

        def beat() -> None:
            while not done.wait(self.heartbeat_seconds):
                try:
                    heartbeat(self.db, job.job_id, self.name)
                except JobLostError:
                    lost.set()
                    return
                except Exception as error:  # a database hiccup: try again at the next beat
                    self.log(f"[job {job.job_id}] heartbeat failed: {error}")

        beater = threading.Thread(target=beat, name=f"heartbeat-{job.job_id}", daemon=True)
        beater.start()
        try:
            job_log(f"started by {self.name} (attempt {job.attempts})")
            outcome = run_job(self.db, job, job_log)
            finished = finish(self.db, job.job_id, self.name, succeeded=True,
                              outcome=outcome.outcome, report=outcome.report)
            shutil.rmtree(job_dir / "cache", ignore_errors=True)
            return finished
        except JobLostError as error:
            self.log(str(error))
            return None
        except EngineError as error:
            job_log(f"failed: {error}")
            return finish(self.db, job.job_id, self.name, succeeded=False, error=str(error))
        except Exception as error:  # record any crash on the job, keep serving
            job_log(f"crashed: {error!r}")
            detail = traceback.format_exc()
            return finish(self.db, job.job_id, self.name, succeeded=False,
                          error=f"{error!r}\n{detail}")
        finally:
            done.set()
            beater.join(timeout=5)
            log_file.close()
