"""SQLAlchemy 2.0 typed models of the station's local database.

Every datetime is stored as UTC (see :class:`~skinstation.core.timeutil.UtcDateTime`).
Enumerated columns are plain strings guarded by CHECK constraints so the schema reads the
same on SQLite and PostgreSQL. The schema is created by the Alembic migrations in
``skinstation/storage/migrations``, never by ``create_all``; a test checks both agree.

Append-only tables: ``audit_log`` and ``labels`` (database triggers refuse UPDATE/DELETE,
and the session guard in :mod:`skinstation.storage.audit` refuses them before they reach SQL).

Encrypted at rest (:class:`~skinstation.core.sqlcrypto.EncryptedText`, the station's data
keys): patients' pseudonyms (deterministic: looked up and unique) and names, label notes and
the pseudonyms of pending erasures.
Only erasure (:mod:`skinstation.storage.erasure`) deletes labels, lifting their trigger for its
own transaction; the audit log is never changed.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum

from sqlalchemy import (
    JSON,
    CheckConstraint,
    ForeignKey,
    Index,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from skinstation.core.crypto import STATION_KEYS
from skinstation.core.sqlbase import (
    AuditLogColumns,
    LoginAccountColumns,
    PredictionColumns,
    annotation_types,
    in_values,
    new_metadata,
)
from skinstation.core.sqlcrypto import NAME_COLUMN, PSEUDONYM_COLUMN, EncryptedText
from skinstation.core.triage import INDETERMINATE as INDETERMINATE
from skinstation.core.triage import NOT_ASSESSABLE as NOT_ASSESSABLE
from skinstation.core.triage import SKIN_CANCER as SKIN_CANCER
from skinstation.protocol.erasures import ErasureReason as ErasureReason


class Role(StrEnum):
    """What an operator account is for."""

    STAFF = "staff"
    DERMATOLOGIST = "dermatologist"
    ADMIN = "admin"


class LabelKind(StrEnum):
    """Who produced a label: the capturing operator (original) or a dermatologist (review)."""

    OPERATOR = "operator"
    REVIEW = "review"


class OutboxState(StrEnum):
    """Sync state of a capture waiting to go to the central engine.

    ``refused``: the engine refused it for good (a 4xx, or a server error too many times), or
    the local record cannot be sent; set aside with its reason until an administrator retries.
    """

    PENDING = "pending"
    SENT = "sent"
    CONFIRMED = "confirmed"
    REFUSED = "refused"


class ErasureState(StrEnum):
    """Whether the engine has confirmed an erasure (then the pseudonym is forgotten)."""

    PENDING = "pending"
    CONFIRMED = "confirmed"


class Base(DeclarativeBase):
    """Declarative base with the naming convention and the UTC datetime mapping."""

    metadata = new_metadata()
    type_annotation_map = annotation_types()


class Operator(LoginAccountColumns, Base):
    """A person who logs in to the station."""

    __tablename__ = "operators"
    __table_args__ = (CheckConstraint(in_values("role", Role), name="role"),)

    password_changed_at: Mapped[datetime]
    created_at: Mapped[datetime]


class Patient(Base):
    """A patient, known by a pseudonymous id; the name is kept only if the station allows it."""

    __tablename__ = "patients"

    id: Mapped[int] = mapped_column(primary_key=True)
    pseudonym: Mapped[str] = mapped_column(
        EncryptedText(STATION_KEYS, "patients.pseudonym", deterministic=True,
                      length=PSEUDONYM_COLUMN), unique=True)
    name: Mapped[str | None] = mapped_column(
        EncryptedText(STATION_KEYS, "patients.name", length=NAME_COLUMN))
    created_by_id: Mapped[int] = mapped_column(ForeignKey("operators.id"))
    created_at: Mapped[datetime]


class Visit(Base):
    """One sitting of a patient at the station with an operator."""

    __tablename__ = "visits"
    __table_args__ = (Index("ix_visits_uid", "uid", unique=True),)

    id: Mapped[int] = mapped_column(primary_key=True)
    patient_id: Mapped[int] = mapped_column(ForeignKey("patients.id"), index=True)
    operator_id: Mapped[int] = mapped_column(ForeignKey("operators.id"))
    station_id: Mapped[str] = mapped_column(String(64))
    opened_at: Mapped[datetime]
    closed_at: Mapped[datetime | None]
    # The visit's identity at the engine: a UUID, so a station restored from a backup never
    # reuses one (visits made before migration 0004 keep their old ref, str(id)).
    uid: Mapped[str | None] = mapped_column(String(36), insert_default=lambda: str(uuid.uuid4()))


class Capture(Base):
    """One image taken in one illumination band; its bytes live in the image store."""

    __tablename__ = "captures"
    __table_args__ = (
        UniqueConstraint("multispectral_group_id", "multispectral_index"),
        CheckConstraint(
            "(multispectral_group_id IS NULL) = (multispectral_index IS NULL)",
            name="multispectral_pair",
        ),
        CheckConstraint("width > 0 AND height > 0", name="positive_size"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    uid: Mapped[str] = mapped_column(String(36), unique=True)
    visit_id: Mapped[int] = mapped_column(ForeignKey("visits.id"), index=True)
    operator_id: Mapped[int] = mapped_column(ForeignKey("operators.id"))
    station_id: Mapped[str] = mapped_column(String(64))
    device_id: Mapped[str] = mapped_column(String(128))
    band: Mapped[str] = mapped_column(String(32))
    body_site: Mapped[str] = mapped_column(String(64))
    image_ref: Mapped[str] = mapped_column(String(128))
    image_sha256: Mapped[str] = mapped_column(String(64), index=True)
    image_format: Mapped[str] = mapped_column(String(8))
    image_size: Mapped[int]
    width: Mapped[int]
    height: Mapped[int]
    access_time: Mapped[datetime]
    capture_time: Mapped[datetime] = mapped_column(index=True)
    saved_at: Mapped[datetime]
    uploaded_at: Mapped[datetime | None]
    multispectral_group_id: Mapped[str | None] = mapped_column(String(36))
    multispectral_index: Mapped[int | None]


class Prediction(PredictionColumns, Base):
    """One model's output for one capture; a capture's latest prediction is the one shown."""

    __tablename__ = "predictions"

    id: Mapped[int] = mapped_column(primary_key=True)
    capture_id: Mapped[int] = mapped_column(ForeignKey("captures.id"), index=True)


class Label(Base):
    """A diagnosis code attached to a capture; rows are never changed, reviews add rows.

    The capture's ORIGINAL label is its one ``operator`` row. Its FINAL label is the latest
    ``review`` row, else the original. A revised review is a new row naming the one it
    ``supersedes``.
    """

    __tablename__ = "labels"
    __table_args__ = (
        CheckConstraint(in_values("kind", LabelKind), name="kind"),
        Index(
            "uq_labels_one_original",
            "capture_id",
            unique=True,
            sqlite_where=text("kind = 'operator'"),
            postgresql_where=text("kind = 'operator'"),
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    capture_id: Mapped[int] = mapped_column(ForeignKey("captures.id"), index=True)
    kind: Mapped[str] = mapped_column(String(16))
    code: Mapped[str] = mapped_column(String(32))
    note: Mapped[str | None] = mapped_column(EncryptedText(STATION_KEYS, "labels.note"))
    author_id: Mapped[int] = mapped_column(ForeignKey("operators.id"))
    supersedes_id: Mapped[int | None] = mapped_column(ForeignKey("labels.id"))
    created_at: Mapped[datetime]


class AuditEvent(AuditLogColumns, Base):
    """Who viewed or changed what, and when; append-only."""

    actor_id: Mapped[int | None] = mapped_column(ForeignKey("operators.id"), index=True)
    station_id: Mapped[str] = mapped_column(String(64))


class OutboxEntry(Base):
    """A capture waiting to be synced to the central engine (one row per capture)."""

    __tablename__ = "outbox"
    __table_args__ = (CheckConstraint(in_values("state", OutboxState), name="state"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    capture_id: Mapped[int] = mapped_column(ForeignKey("captures.id"), unique=True)
    state: Mapped[str] = mapped_column(String(16), index=True)
    attempts: Mapped[int] = mapped_column(default=0)
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]
    sent_at: Mapped[datetime | None]
    confirmed_at: Mapped[datetime | None]
    server_errors: Mapped[int] = mapped_column(default=0)
    refused_at: Mapped[datetime | None]


class EngineReview(Base):
    """A dermatologist review received from the central engine, stored as a review label.

    ``engine_review_id`` makes receiving idempotent: a review pulled twice is kept once. The
    label's author is a login-disabled mirror account named ``@engine:<username>``.
    """

    __tablename__ = "engine_reviews"

    id: Mapped[int] = mapped_column(primary_key=True)
    engine_review_id: Mapped[int] = mapped_column(unique=True)
    capture_id: Mapped[int] = mapped_column(ForeignKey("captures.id"), index=True)
    label_id: Mapped[int] = mapped_column(ForeignKey("labels.id"), unique=True)
    reviewer: Mapped[str] = mapped_column(String(128))
    reviewed_at: Mapped[datetime]
    received_at: Mapped[datetime]


class SyncState(Base):
    """Small named values the sync client keeps (cursors, installed model, last results)."""

    __tablename__ = "sync_state"

    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str] = mapped_column(Text)
    updated_at: Mapped[datetime]


class Erasure(Base):
    """An erasure done on this station, queued for the engine until it confirms.

    ``pseudonym`` names the erased patient to the engine and is set NULL once the engine
    confirms; ``capture_uids`` are the erased captures' random uids (nothing links them to
    anyone once the rows are gone). A retention erasure has no pseudonym.
    """

    __tablename__ = "erasures"
    __table_args__ = (
        CheckConstraint(in_values("reason", ErasureReason), name="reason"),
        CheckConstraint(in_values("state", ErasureState), name="state"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    requested_at: Mapped[datetime]
    reason: Mapped[str] = mapped_column(String(32))
    pseudonym: Mapped[str | None] = mapped_column(
        EncryptedText(STATION_KEYS, "erasures.pseudonym", length=PSEUDONYM_COLUMN))
    capture_uids: Mapped[list[str]] = mapped_column(JSON)
    state: Mapped[str] = mapped_column(String(16), index=True)
    confirmed_at: Mapped[datetime | None]
