"""Time helpers: the injectable clock type and a column type that keeps datetimes in UTC."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import DateTime
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator

Clock = Callable[[], datetime]
"""A function returning the current time as a timezone-aware datetime (tests inject fakes)."""


def utc_now() -> datetime:
    """Return the current time, timezone-aware, in UTC."""
    return datetime.now(UTC)


def as_utc(value: datetime) -> datetime:
    """Convert an aware datetime to UTC.

    Raises:
        ValueError: If ``value`` is naive: a naive time is ambiguous in a clinical record.
    """
    if value.tzinfo is None or value.tzinfo.utcoffset(value) is None:
        raise ValueError(f"datetime must be timezone-aware, got naive {value.isoformat()}")
    return value.astimezone(UTC)


class UtcDateTime(TypeDecorator[datetime]):
    """A datetime column stored as naive UTC and read back as aware UTC on every backend."""

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> Any:
        """Convert an aware datetime to naive UTC for storage."""
        if value is None:
            return None
        return as_utc(value).replace(tzinfo=None)

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        """Attach UTC to the stored naive datetime."""
        if value is None:
            return None
        stored: datetime = value  # the DateTime implementation reads back a naive datetime
        return stored.replace(tzinfo=UTC)


def years_before(moment: datetime, years: int) -> datetime:
    """The same time on the same calendar day ``years`` years earlier (29 Feb becomes 28 Feb)."""
    try:
        return moment.replace(year=moment.year - years)
    except ValueError:
        return moment.replace(year=moment.year - years, day=28)
