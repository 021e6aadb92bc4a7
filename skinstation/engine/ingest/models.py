"""Tables of the ingest domain (all of the engine's tables: :mod:`skinstation.engine.tables`).

Encrypted at rest with the engine's data keys (:class:`~skinstation.core.sqlcrypto.
EncryptedText`): patients' pseudonyms (deterministic) and names, providers' end-user ids
(deterministic) and the station operators' label notes.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import (
    CheckConstraint,
    Float,
    ForeignKey,
    Index,
    String,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from skinstation.core.crypto import ENGINE_KEYS
from skinstation.core.sqlbase import PredictionColumns
from skinstation.core.sqlcrypto import NAME_COLUMN, PSEUDONYM_COLUMN, REF_COLUMN, EncryptedText
from skinstation.engine.base import Base


class CaptureSource(StrEnum):
    """Where a capture came from: a capture station, or a third-party provider's API call."""

    STATION = "station"
    PROVIDER = "provider"


class Patient(Base):
    """A patient known to one station, by pseudonym (a name only if names are accepted)."""

    __tablename__ = "patients"
    __table_args__ = (UniqueConstraint("station_id", "pseudonym"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    station_id: Mapped[int] = mapped_column(ForeignKey("stations.id"))
    pseudonym: Mapped[str] = mapped_column(
        EncryptedText(ENGINE_KEYS, "patients.pseudonym", deterministic=True,
                      length=PSEUDONYM_COLUMN))
    name: Mapped[str | None] = mapped_column(
        EncryptedText(ENGINE_KEYS, "patients.name", length=NAME_COLUMN))
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
    terminal, access and upload times). Review and retraining treat both alike. ``lesion_*``:
    the station's lesion the capture shows (uid and body-map placement), or NULLs.
    """

    __tablename__ = "captures"
    __table_args__ = (
        Index("ix_captures_station_id_lesion_uid", "station_id", "lesion_uid"),
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
    end_user_ref: Mapped[str | None] = mapped_column(
        EncryptedText(ENGINE_KEYS, "captures.end_user_ref", deterministic=True,
                      length=REF_COLUMN))
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
    original_label_note: Mapped[str | None] = mapped_column(
        EncryptedText(ENGINE_KEYS, "captures.original_label_note"))
    # The station's lesion (migration 0007): its uid and body-map placement, or NULLs.
    lesion_uid: Mapped[str | None] = mapped_column(String(36))
    lesion_body_site: Mapped[str | None] = mapped_column(String(64))
    lesion_view: Mapped[str | None] = mapped_column(String(8))
    lesion_side: Mapped[str | None] = mapped_column(String(8))
    lesion_x: Mapped[float | None] = mapped_column(Float)
    lesion_y: Mapped[float | None] = mapped_column(Float)


class CapturePrediction(PredictionColumns, Base):
    """A model output the station recorded for a capture."""

    __tablename__ = "predictions"

    id: Mapped[int] = mapped_column(primary_key=True)
    capture_id: Mapped[int] = mapped_column(ForeignKey("captures.id"), index=True)
