"""API request and response bodies of the retraining domain (part of the OpenAPI document)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid")


class JobRequest(_In):
    """Optional overrides of the retraining hyper-parameters (the gate is not overridable)."""

    views: int | None = Field(default=None, ge=1, le=16)
    head_epochs: int | None = Field(default=None, ge=1, le=200)
    finetune_epochs: int | None = Field(default=None, ge=0, le=50)
    batch_size: int | None = Field(default=None, ge=2, le=512)
    train_processes: int | None = Field(default=None, ge=1, le=64)


class JobOut(BaseModel):
    """A training job."""

    job_id: int
    state: str
    requested_by: str
    requested_at: datetime
    params: dict[str, Any]
    attempts: int
    worker: str | None
    started_at: datetime | None
    heartbeat_at: datetime | None
    finished_at: datetime | None
    outcome: str | None
    candidate_version: str | None
    report: dict[str, Any]
    error: str | None
