"""Tables of the models domain (all of the engine's tables: :mod:`skinstation.engine.tables`)."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import (
    CheckConstraint,
    ForeignKey,
    String,
    Text,
)
from sqlalchemy.orm import Mapped, mapped_column

from skinstation.core.sqlbase import in_values
from skinstation.engine.base import Base


class ModelStatus(StrEnum):
    """Where a model version stands."""

    CANDIDATE = "candidate"
    PROMOTED = "promoted"
    REJECTED = "rejected"


class ModelVersion(Base):
    """A model file the engine knows: imported, or a retraining candidate with its report.

    ``claimed_metrics`` (column ``metrics``) are what the file says about itself: whoever made
    the file wrote them, and nothing here checked them. ``gate_metrics`` are what the engine
    measured on its locked test set (and the other clinics' test set) when the promotion gate
    ran (``None``: never gated); ``report`` holds the gate's verdict.
    """

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
    claimed_metrics: Mapped[dict[str, Any]] = mapped_column("metrics")
    gate_metrics: Mapped[dict[str, Any] | None]
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
