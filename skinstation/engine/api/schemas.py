"""Request and response bodies of the engine API (they make up the OpenAPI document)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid")


class LoginRequest(_In):
    """Username and password of an engine account."""

    username: str = Field(min_length=1, max_length=64)
    password: str = Field(min_length=1, max_length=256)


class LoginResponse(BaseModel):
    """A bearer token for the account's API calls."""

    token: str
    expires_at: datetime
    username: str
    role: str


class QueueItemOut(BaseModel):
    """One case waiting for review."""

    capture_id: int
    uid: str
    station: str
    pseudonym: str
    band: str
    body_site: str
    capture_time: datetime
    decision: str | None
    referral: bool | None
    model_version: str | None
    group_probabilities: dict[str, float]
    original_label: str | None
    urgent: bool
    source: str = Field(default="station", description="'station' or 'provider'")


class ReviewRequest(_In):
    """A dermatologist's verdict on a case."""

    action: Literal["confirm", "correct"]
    code: str | None = Field(default=None, max_length=32, description="diagnosis for 'correct'")
    note: str | None = Field(default=None, max_length=2000)


class CodeRequest(_In):
    """Ask for an enrollment code."""

    station_name: str = Field(min_length=1, max_length=200)


class CodeResponse(BaseModel):
    """A one-time enrollment code (shown once)."""

    code: str
    station_name: str
    expires_at: datetime


class StationOut(BaseModel):
    """An enrolled station."""

    station_id: int
    name: str
    station_ref: str
    enrolled_at: datetime
    revoked_at: datetime | None
    last_seen_at: datetime | None


class AccountIn(_In):
    """A new engine account."""

    username: str = Field(min_length=2, max_length=64)
    password: str = Field(min_length=1, max_length=256)
    role: Literal["admin", "dermatologist"]
    display_name: str = Field(default="", max_length=200)


class AccountOut(BaseModel):
    """An engine account (never its password hash)."""

    account_id: int
    username: str
    display_name: str
    role: str


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


class VersionOut(BaseModel):
    """A model version with its metrics and provenance."""

    version: str
    status: str
    file_sha256: str
    parent_version: str | None
    data_fingerprint: str
    metrics: dict[str, Any]
    report: dict[str, Any]
    created_by: str
    created_at: datetime
    decided_by: str | None
    job_id: int | None
    deployed: bool


class RollbackRequest(_In):
    """Which version to go back to (default: the one deployed before the current one)."""

    to_version: str | None = Field(default=None, max_length=64)
    reason: str = Field(default="rollback", max_length=2000)


class AuditOut(BaseModel):
    """One audit log row."""

    id: int
    occurred_at: datetime
    actor: str
    action: str
    entity_type: str | None
    entity_id: str | None
    detail: dict[str, Any]
