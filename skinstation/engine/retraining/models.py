"""Tables of the retraining domain (all engine tables: :mod:`skinstation.engine.tables`)."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import (
    CheckConstraint,
    ForeignKey,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from skinstation.core.sqlbase import in_values
from skinstation.engine.base import Base


class JobState(StrEnum):
    """Life of a training job."""

    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"


class TrainingJob(Base):
    """A retraining request, run by a separate worker process (state survives restarts)."""

    __tablename__ = "training_jobs"
    __table_args__ = (CheckConstraint(in_values("state", JobState), name="state"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    state: Mapped[str] = mapped_column(String(16), index=True)
    requested_by: Mapped[str] = mapped_column(String(128))
    requested_at: Mapped[datetime]
    params: Mapped[dict[str, Any]]
    attempts: Mapped[int] = mapped_column(default=0)
    worker: Mapped[str | None] = mapped_column(String(128))
    started_at: Mapped[datetime | None]
    heartbeat_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]
    outcome: Mapped[str | None] = mapped_column(String(16))
    report: Mapped[dict[str, Any]]
    error: Mapped[str | None] = mapped_column(Text)


class TrainingCase(Base):
    """A synced case (by capture uid) a training job trained on.

    Written when the job hands its cases to training, so a model version (its ``job_id``) is
    known to have seen a case even after the case is erased (``erased_at``).
    """

    __tablename__ = "training_cases"
    __table_args__ = (UniqueConstraint("job_id", "capture_uid"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    job_id: Mapped[int] = mapped_column(ForeignKey("training_jobs.id"))
    capture_uid: Mapped[str] = mapped_column(String(36), index=True)
    erased_at: Mapped[datetime | None]
