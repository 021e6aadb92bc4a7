"""SQLAlchemy models of the engine's own database (created by its Alembic migrations).

Every datetime is UTC. Enumerated columns are strings guarded by CHECK constraints so the same
schema runs on SQLite and PostgreSQL. ``audit_log``, ``reviews`` and ``deployments`` are
append-only (database triggers refuse UPDATE and DELETE). Secrets are never stored: tokens and
enrollment codes are kept as sha256 digests, passwords as argon2id hashes.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import (
    CheckConstraint,
    ForeignKey,
    Index,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from skinstation.core.sqlbase import annotation_types, in_values, new_metadata


class AccountRole(StrEnum):
    """What an engine account may do."""

    ADMIN = "admin"
    DERMATOLOGIST = "dermatologist"


class ReviewAction(StrEnum):
    """A review agrees with the station's original label, or corrects it."""

    CONFIRM = "confirm"
    CORRECT = "correct"


class ModelStatus(StrEnum):
    """Where a model version stands."""

    CANDIDATE = "candidate"
    PROMOTED = "promoted"
    REJECTED = "rejected"


class CaptureSource(StrEnum):
    """Where a capture came from: a capture station, or a third-party provider's API call."""

    STATION = "station"
    PROVIDER = "provider"


class JobState(StrEnum):
    """Life of a training job."""

    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"


class Base(DeclarativeBase):
    """Declarative base of the engine database."""

    metadata = new_metadata()
    type_annotation_map = annotation_types()


class Account(Base):
    """A person who uses the engine: an administrator or a dermatologist."""

    __tablename__ = "accounts"
    __table_args__ = (CheckConstraint(in_values("role", AccountRole), name="role"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    username: Mapped[str] = mapped_column(String(64), unique=True)
    display_name: Mapped[str] = mapped_column(String(200))
    role: Mapped[str] = mapped_column(String(20))
    password_hash: Mapped[str] = mapped_column(String(255))
    disabled: Mapped[bool] = mapped_column(default=False)
    failed_login_count: Mapped[int] = mapped_column(default=0)
    locked_until: Mapped[datetime | None]
    created_at: Mapped[datetime]


class ApiSession(Base):
    """A login of an account: the bearer token's sha256, with its expiry."""

    __tablename__ = "api_sessions"

    id: Mapped[int] = mapped_column(primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"), index=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime]
    expires_at: Mapped[datetime]
    ended_at: Mapped[datetime | None]


class Station(Base):
    """An enrolled capture station; its credential is stored as a sha256 digest."""

    __tablename__ = "stations"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    station_ref: Mapped[str] = mapped_column(String(64))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    enrolled_at: Mapped[datetime]
    revoked_at: Mapped[datetime | None]
    revoked_by: Mapped[str | None] = mapped_column(String(128))
    last_seen_at: Mapped[datetime | None]


class EnrollmentCode(Base):
    """A one-time code an administrator hands to a station (kept as a sha256 digest)."""

    __tablename__ = "enrollment_codes"

    id: Mapped[int] = mapped_column(primary_key=True)
    code_hash: Mapped[str] = mapped_column(String(64), unique=True)
    station_name: Mapped[str] = mapped_column(String(200))
    created_by: Mapped[str] = mapped_column(String(128))
    created_at: Mapped[datetime]
    expires_at: Mapped[datetime]
    used_at: Mapped[datetime | None]
    station_id: Mapped[int | None] = mapped_column(ForeignKey("stations.id"))


class Patient(Base):
    """A patient known to one station, by pseudonym (a name only if names are accepted)."""

    __tablename__ = "patients"
    __table_args__ = (UniqueConstraint("station_id", "pseudonym"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    station_id: Mapped[int] = mapped_column(ForeignKey("stations.id"))
    pseudonym: Mapped[str] = mapped_column(String(64))
    name: Mapped[str | None] = mapped_column(String(200))
    created_at: Mapped[datetime]


class ExamSession(Base):
    """A session (the station's visit) in which captures were taken."""

    __tablename__ = "exam_sessions"
    __table_args__ = (UniqueConstraint("station_id", "ref"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    station_id: Mapped[int] = mapped_column(ForeignKey("stations.id"))
    ref: Mapped[str] = mapped_column(String(64))
    patient_id: Mapped[int] = mapped_column(ForeignKey("patients.id"), index=True)
    operator: Mapped[str] = mapped_column(String(64))
    opened_at: Mapped[datetime]
    closed_at: Mapped[datetime | None]


class Capture(Base):
    """One case image; its bytes live in the engine's content-addressed store.

    ``source`` says where it came from: a station (``station_id``, ``session_id`` and the
    session's patient) or a provider's consented API call (``provider_id``, the provider's
    pseudonymous ``end_user_ref``; ``device_id``, ``access_time`` and ``received_at`` hold the
    terminal, access and upload times). Review and retraining treat both alike.
    """

    __tablename__ = "captures"
    __table_args__ = (
        CheckConstraint(
            "(source = 'station' AND station_id IS NOT NULL AND session_id IS NOT NULL "
            "AND provider_id IS NULL AND end_user_ref IS NULL) OR "
            "(source = 'provider' AND station_id IS NULL AND session_id IS NULL "
            "AND provider_id IS NOT NULL AND end_user_ref IS NOT NULL)",
            name="source",
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    uid: Mapped[str] = mapped_column(String(36), unique=True)
    source: Mapped[str] = mapped_column(String(16), default=CaptureSource.STATION.value)
    station_id: Mapped[int | None] = mapped_column(ForeignKey("stations.id"), index=True)
    session_id: Mapped[int | None] = mapped_column(ForeignKey("exam_sessions.id"), index=True)
    provider_id: Mapped[int | None] = mapped_column(ForeignKey("providers.id"), index=True)
    end_user_ref: Mapped[str | None] = mapped_column(String(128))
    band: Mapped[str] = mapped_column(String(32))
    body_site: Mapped[str] = mapped_column(String(64))
    device_id: Mapped[str] = mapped_column(String(128))
    operator: Mapped[str] = mapped_column(String(64))
    image_ref: Mapped[str] = mapped_column(String(128))
    image_sha256: Mapped[str] = mapped_column(String(64), index=True)
    image_size: Mapped[int]
    image_format: Mapped[str] = mapped_column(String(8))
    width: Mapped[int]
    height: Mapped[int]
    access_time: Mapped[datetime]
    capture_time: Mapped[datetime] = mapped_column(index=True)
    saved_at: Mapped[datetime]
    received_at: Mapped[datetime]
    multispectral_group_id: Mapped[str | None] = mapped_column(String(36))
    multispectral_index: Mapped[int | None]
    original_label: Mapped[str | None] = mapped_column(String(32))
    original_label_author: Mapped[str | None] = mapped_column(String(64))
    original_label_note: Mapped[str | None] = mapped_column(Text)


class CapturePrediction(Base):
    """A model output the station recorded for a capture."""

    __tablename__ = "predictions"

    id: Mapped[int] = mapped_column(primary_key=True)
    capture_id: Mapped[int] = mapped_column(ForeignKey("captures.id"), index=True)
    model_version: Mapped[str] = mapped_column(String(64))
    class_probabilities: Mapped[dict[str, Any]]
    group_probabilities: Mapped[dict[str, Any]]
    decision: Mapped[str] = mapped_column(String(32))
    referral: Mapped[bool | None]
    created_at: Mapped[datetime]


class Review(Base):
    """A dermatologist's confirmation or correction; the latest one is the final label."""

    __tablename__ = "reviews"
    __table_args__ = (
        CheckConstraint(in_values("action", ReviewAction), name="action"),
        CheckConstraint("origin IN ('engine', 'station')", name="origin"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    capture_id: Mapped[int] = mapped_column(ForeignKey("captures.id"), index=True)
    origin: Mapped[str] = mapped_column(String(16))
    reviewer_id: Mapped[int | None] = mapped_column(ForeignKey("accounts.id"))
    reviewer: Mapped[str] = mapped_column(String(128))
    action: Mapped[str] = mapped_column(String(16))
    code: Mapped[str] = mapped_column(String(32))
    note: Mapped[str | None] = mapped_column(Text)
    supersedes_id: Mapped[int | None] = mapped_column(ForeignKey("reviews.id"))
    created_at: Mapped[datetime]


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


class ModelVersion(Base):
    """A model file the engine knows: imported, or a retraining candidate with its report."""

    __tablename__ = "model_versions"
    __table_args__ = (CheckConstraint(in_values("status", ModelStatus), name="status"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    version: Mapped[str] = mapped_column(String(64), unique=True)
    file_ref: Mapped[str] = mapped_column(String(255))
    file_sha256: Mapped[str] = mapped_column(String(64))
    content_sha256: Mapped[str] = mapped_column(String(64))
    file_size: Mapped[int]
    status: Mapped[str] = mapped_column(String(16))
    parent_version: Mapped[str | None] = mapped_column(String(64))
    data_fingerprint: Mapped[str] = mapped_column(Text)
    metrics: Mapped[dict[str, Any]]
    report: Mapped[dict[str, Any]]
    job_id: Mapped[int | None] = mapped_column(ForeignKey("training_jobs.id"))
    created_by: Mapped[str] = mapped_column(String(128))
    created_at: Mapped[datetime]
    decided_by: Mapped[str | None] = mapped_column(String(128))
    decided_at: Mapped[datetime | None]


class SigningKey(Base):
    """The public half of an engine signing key (the private key stays in a 0600 file)."""

    __tablename__ = "signing_keys"

    id: Mapped[int] = mapped_column(primary_key=True)
    key_id: Mapped[str] = mapped_column(String(16), unique=True)
    public_key: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime]


class Deployment(Base):
    """Making a model version the one stations use, with its signed manifest.

    ``sequence`` numbers deployments 1, 2, 3...; the highest is current. It is inside the signed
    manifest, so a station can refuse an older (replayed) manifest.
    """

    __tablename__ = "deployments"
    __table_args__ = (
        CheckConstraint("action IN ('initial', 'promote', 'rollback')", name="action"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    sequence: Mapped[int] = mapped_column(unique=True)
    model_version_id: Mapped[int] = mapped_column(ForeignKey("model_versions.id"))
    action: Mapped[str] = mapped_column(String(16))
    actor: Mapped[str] = mapped_column(String(128))
    reason: Mapped[str] = mapped_column(Text)
    manifest: Mapped[dict[str, Any]]
    signature: Mapped[str] = mapped_column(String(128))
    key_id: Mapped[str] = mapped_column(String(16))
    deployed_at: Mapped[datetime]


class AuditEvent(Base):
    """Who saw or changed what on the engine, and when; append-only."""

    __tablename__ = "audit_log"
    __table_args__ = (Index("ix_audit_log_entity", "entity_type", "entity_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    occurred_at: Mapped[datetime] = mapped_column(index=True)
    actor: Mapped[str] = mapped_column(String(128), index=True)
    action: Mapped[str] = mapped_column(String(64), index=True)
    entity_type: Mapped[str | None] = mapped_column(String(32))
    entity_id: Mapped[str | None] = mapped_column(String(64))
    detail: Mapped[dict[str, Any]]


APPEND_ONLY_TABLES = ("audit_log", "reviews", "deployments")


# The provider tables belong to the same metadata (migrations and schema comparison see them).
from skinstation.engine import provider_schema  # noqa: E402, F401
