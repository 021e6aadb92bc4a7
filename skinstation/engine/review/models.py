"""Tables of the review domain (all of the engine's tables: :mod:`skinstation.engine.tables`)."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import (
    CheckConstraint,
    ForeignKey,
    String,
)
from sqlalchemy.orm import Mapped, mapped_column

from skinstation.core.crypto import ENGINE_KEYS
from skinstation.core.sqlbase import in_values
from skinstation.core.sqlcrypto import EncryptedText
from skinstation.engine.base import Base


class ReviewAction(StrEnum):
    """A review agrees with the station's original label, or corrects it."""

    CONFIRM = "confirm"
    CORRECT = "correct"


class ReviewOrigin(StrEnum):
    """Who made a review.

    ``engine``: a dermatologist's account on the engine; only these are final labels (they
    close a case, go back to stations and train models). ``station``: a review a station
    forwarded with a capture; the engine cannot tell who made it (a station token is all it
    has), so it is kept as a *proposal* until a dermatologist on the engine confirms it.
    """

    ENGINE = "engine"
    STATION = "station"


ORIGIN_ENGINE = ReviewOrigin.ENGINE
ORIGIN_STATION = ReviewOrigin.STATION


class Review(Base):
    """A confirmation or correction of a case's label (see :class:`ReviewOrigin`).

    The latest engine-origin review is the final label; station-origin reviews are proposals.
    """

    __tablename__ = "reviews"
    __table_args__ = (
        CheckConstraint(in_values("action", ReviewAction), name="action"),
        CheckConstraint(in_values("origin", ReviewOrigin), name="origin"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    capture_id: Mapped[int] = mapped_column(ForeignKey("captures.id"), index=True)
    origin: Mapped[str] = mapped_column(String(16))
    reviewer_id: Mapped[int | None] = mapped_column(ForeignKey("accounts.id"))
    reviewer: Mapped[str] = mapped_column(String(128))
    action: Mapped[str] = mapped_column(String(16))
    code: Mapped[str] = mapped_column(String(32))
    note: Mapped[str | None] = mapped_column(EncryptedText(ENGINE_KEYS, "reviews.note"))
    supersedes_id: Mapped[int | None] = mapped_column(ForeignKey("reviews.id"))
    created_at: Mapped[datetime]
