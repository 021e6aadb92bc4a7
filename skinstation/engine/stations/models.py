"""Tables of the stations domain (all of the engine's tables: :mod:`skinstation.engine.tables`)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    ForeignKey,
    String,
)
from sqlalchemy.orm import Mapped, mapped_column

from skinstation.engine.base import Base


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
