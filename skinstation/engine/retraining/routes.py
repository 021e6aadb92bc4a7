"""Routes of the retraining domain: admin training jobs."""

from __future__ import annotations

from fastapi import APIRouter

from skinstation.engine.deps import (
    ADMIN,
    ADMIN_ERRORS,
    Account,
    Db,
    RowId,
)
from skinstation.engine.retraining import jobs
from skinstation.engine.retraining.schemas import JobOut, JobRequest

admin_router = APIRouter(prefix="/admin", tags=["admin"])


@admin_router.post("/training-jobs", response_model=JobOut, status_code=201, responses=ADMIN_ERRORS)
def create_job(body: JobRequest, account: Account, db: Db) -> JobOut:
    """Queue a retraining job (run by a worker process, never by the API)."""
    account.require(ADMIN)
    params = body.model_dump(exclude_none=True)
    return jobs.create_job(db, actor=account.actor, params=params)


@admin_router.get("/training-jobs", response_model=list[JobOut], responses=ADMIN_ERRORS)
def list_jobs(account: Account, db: Db) -> list[JobOut]:
    """Training jobs, newest first."""
    account.require(ADMIN)
    return jobs.list_jobs(db)


@admin_router.get("/training-jobs/{job_id}", response_model=JobOut,
                  responses={**ADMIN_ERRORS, 404: {"description": "no such training job"}})
def get_job(job_id: RowId, account: Account, db: Db) -> JobOut:
    """One training job with its report."""
    account.require(ADMIN)
    return jobs.get_job(db, job_id)
