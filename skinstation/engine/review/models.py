"""Tables of the review domain (all of the engine's tables: :mod:`skinstation.engine.tables`)."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import (
    CheckConstraint,
    ForeignKey,
    String,
    Text,
)
from sqlalchemy.orm import Mapped, mapped_column

from skinstation.core.sqlbase import in_values
from skinstation.engine.base import Base


class ReviewAction(StrEnum):
    """A review agrees with the station's original label, or corrects it."""

    CONFIRM = "confirm"
    CORRECT = "correct"


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
