"""Tables of the patients domain (all of the engine's tables: :mod:`skinstation.engine.tables`).

The patients, sessions and captures themselves are the ingest domain's tables; this domain
keeps only the record of what was erased: no pseudonym, no name, no patient id.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import CheckConstraint, ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from skinstation.core.sqlbase import in_values
from skinstation.engine.base import Base
from skinstation.protocol.erasures import ErasureReason as ErasureReason


class Erasure(Base):
    """One erasure: asked by a station (its ``station_erasure_id``), an admin or retention.

    ``counts`` holds what was deleted and the model versions that had trained on an erased
    capture.
    """

    __tablename__ = "erasures"
    __table_args__ = (CheckConstraint(in_values("reason", ErasureReason), name="reason"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    station_id: Mapped[int | None] = mapped_column(ForeignKey("stations.id"), index=True)
    station_erasure_id: Mapped[int | None]
    reason: Mapped[str] = mapped_column(String(32))
    actor: Mapped[str] = mapped_column(String(128))
    erased_at: Mapped[datetime]
    counts: Mapped[dict[str, Any]]


class ErasedCapture(Base):
    """The uid of an erased capture: the engine refuses to store it again."""

    __tablename__ = "erased_captures"

    id: Mapped[int] = mapped_column(primary_key=True)
    uid: Mapped[str] = mapped_column(String(36), unique=True)
    erasure_id: Mapped[int] = mapped_column(ForeignKey("erasures.id"), index=True)
