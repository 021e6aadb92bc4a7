"""SQLAlchemy 2.0 typed models of the station's local database.

Every datetime is stored as UTC (see :class:`~skinstation.core.timeutil.UtcDateTime`).
Enumerated columns are plain strings guarded by CHECK constraints so the schema reads the
same on SQLite and PostgreSQL. The schema is created by the Alembic migrations in
``skinstation/storage/migrations``, never by ``create_all``; a test checks both agree.

Append-only tables: ``audit_log`` and ``labels`` (database triggers refuse UPDATE/DELETE,
and the session guard in :mod:`skinstation.storage.audit` refuses them before they reach SQL).

Encrypted at rest (:class:`~skinstation.core.sqlcrypto.EncryptedText`, the station's data
keys): patients' pseudonyms (deterministic: looked up and unique) and names, label notes,
lesions' labels and notes and the pseudonyms of pending erasures.
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
    Float,
    ForeignKey,
    Index,
    ScalarSelect,
    String,
    Text,
    UniqueConstraint,
    and_,
    false,
    func,
    or_,
    select,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, column_property, mapped_column

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


class ReviewAction(StrEnum):
    """How a dermatologist gave a review: agreeing with the model's top class, or correcting."""

    AGREE = "agree"
    CORRECT = "correct"


class OutboxState(StrEnum):
    """Sync state of a capture waiting to go to the central engine.

    ``refused``: the engine refused it for good (a 4xx, or a server error too many times), or
    the local record cannot be sent; set aside with its reason until an administrator retries.
    """

    PENDING = "pending"
    SENT = "sent"
    CONFIRMED = "confirmed"
    REFUSED = "refused"


class BodyView(StrEnum):
    """Which side of the body map a lesion is placed on."""

    FRONT = "front"
    BACK = "back"


class BodySide(StrEnum):
    """The patient's side of the body a lesion is on."""

    LEFT = "left"
    RIGHT = "right"
    MIDLINE = "midline"


class Sex(StrEnum):
    """A patient's sex as the station records it (optional)."""

    FEMALE = "female"
    MALE = "male"
    OTHER = "other"
    UNKNOWN = "unknown"


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
    # Set by an administrator's password reset; cleared when the operator changes it (0008).
    must_change_password: Mapped[bool] = mapped_column(default=False, server_default=false())


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
    # Demographics (migration 0010), all optional; checked in skinstation.storage.lesions.
    sex: Mapped[str | None] = mapped_column(String(16))
    birth_year: Mapped[int | None]
    fitzpatrick: Mapped[int | None]


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
    # ``number``: the visit's place among its patient's visits, 1 for the first (computed in
    # SQL by _visit_number below, not a column; see skinstation.storage.visits).


def _visit_number() -> ScalarSelect[int]:
    """Per-patient visit number: the patient's visits opened before it (or with it), counted."""
    earlier = Visit.__table__.alias("earlier_visit")
    return (
        select(func.count(earlier.c.id))
        .where(
            earlier.c.patient_id == Visit.patient_id,
            or_(
                earlier.c.opened_at < Visit.opened_at,
                and_(earlier.c.opened_at == Visit.opened_at, earlier.c.id <= Visit.id),
            ),
        )
        .correlate_except(earlier)
        .scalar_subquery()
    )


Visit.number = column_property(_visit_number())  # type: ignore[attr-defined]


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
    # The lesion this capture shows (migration 0010); captures made before have none.
    lesion_id: Mapped[int | None] = mapped_column(ForeignKey("lesions.id"), index=True)
    # Pixel size in mm when saved (camera.field_of_view_mm / width; migration 0011), or None.
    mm_per_pixel: Mapped[float | None] = mapped_column(Float)


class Lesion(Base):
    """A lesion of a patient, followed over visits: its captures name it (migration 0010).

    Placed on the body map: ``body_site`` (the capture site codes), ``view`` (front/back),
    ``side`` and a point ``x``/``y`` in 0..1 of the map. ``label`` / ``note``: optional free
    text, encrypted at rest. ``overview_capture_id``: an overview (macro) capture with the
    lesion marked at ``overview_x``/``overview_y``; no foreign key (captures point at lesions
    already), erasure clears it with the capture. ``uid`` is the lesion's identity at the
    engine.
    """

    __tablename__ = "lesions"
    __table_args__ = (
        CheckConstraint(in_values("view", BodyView), name="view"),
        CheckConstraint(in_values("side", BodySide), name="side"),
        CheckConstraint("x >= 0 AND x <= 1 AND y >= 0 AND y <= 1", name="point"),
        CheckConstraint(
            "(overview_x IS NULL) = (overview_y IS NULL) AND (overview_x IS NULL OR "
            "(overview_x >= 0 AND overview_x <= 1 AND overview_y >= 0 AND overview_y <= 1))",
            name="overview_point"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    uid: Mapped[str] = mapped_column(String(36), unique=True,
                                     insert_default=lambda: str(uuid.uuid4()))
    patient_id: Mapped[int] = mapped_column(ForeignKey("patients.id"), index=True)
    body_site: Mapped[str] = mapped_column(String(64))
    view: Mapped[str] = mapped_column(String(8))
    side: Mapped[str] = mapped_column(String(8))
    x: Mapped[float] = mapped_column(Float)
    y: Mapped[float] = mapped_column(Float)
    label: Mapped[str | None] = mapped_column(EncryptedText(STATION_KEYS, "lesions.label"))
    note: Mapped[str | None] = mapped_column(EncryptedText(STATION_KEYS, "lesions.note"))
    created_at: Mapped[datetime]
    created_by_id: Mapped[int] = mapped_column(ForeignKey("operators.id"))
    overview_capture_id: Mapped[int | None]
    overview_x: Mapped[float | None] = mapped_column(Float)
    overview_y: Mapped[float | None] = mapped_column(Float)


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


class ReviewDetail(Base):
    """How a review label was given (migration 0009); labels themselves stay append-only.

    ``action``: agree with the model or correct it. ``other_text``: what an ``other`` outcome
    is (required for it). ``withdrawn_at`` / ``withdrawn_by_id``: the review was undone by its
    author before it was synced; the label row stays, queries and uploads leave it out.
    """

    __tablename__ = "review_details"
    __table_args__ = (CheckConstraint(in_values("action", ReviewAction), name="action"),)

    id: Mapped[int] = mapped_column(primary_key=True)  # key rotation rewrites rows by id
    label_id: Mapped[int] = mapped_column(ForeignKey("labels.id"), unique=True)
    action: Mapped[str] = mapped_column(String(16))
    other_text: Mapped[str | None] = mapped_column(
        EncryptedText(STATION_KEYS, "review_details.other_text"))
    withdrawn_at: Mapped[datetime | None]
    withdrawn_by_id: Mapped[int | None] = mapped_column(ForeignKey("operators.id"))


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
