"""Request and response bodies of the engine API (they make up the OpenAPI document)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid")


class EnrollRequest(_In):
    """A station's one-time enrollment."""

    code: str = Field(min_length=4, max_length=64, description="one-time enrollment code")
    station_ref: str = Field(min_length=1, max_length=64, description="the station's own id")


class EnrollResponse(BaseModel):
    """The station's credential (shown once) and the engine key to pin."""

    station_id: int
    station_name: str
    token: str
    public_key: str = Field(description="base64 raw Ed25519 public key that signs manifests")
    key_id: str


class CaptureReceipt(BaseModel):
    """The engine's confirmation that it holds a capture."""

    capture_id: int
    uid: str
    image_sha256: str
    duplicate: bool = Field(description="true if the engine already had it (a retry)")


class ReviewOut(BaseModel):
    """A review (engine or station origin)."""

    review_id: int
    capture_id: int
    capture_uid: str
    origin: str
    action: str
    code: str
    note: str | None
    reviewer: str
    reviewer_name: str
    reviewed_at: datetime
    supersedes_id: int | None


class SignedManifestOut(BaseModel):
    """The current deployment's manifest and its Ed25519 signature."""

    manifest: dict[str, Any]
    signature: str


class StationEventIn(_In):
    """Something a station reports (kept in the engine's audit log)."""

    kind: Literal["model_installed", "model_refused"]
    version: str | None = Field(default=None, max_length=64)
    deployment: int | None = None
    detail: str = Field(default="", max_length=2000)


class StationMe(BaseModel):
    """Who the engine thinks the caller is."""

    station_id: int
    name: str
    station_ref: str


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
