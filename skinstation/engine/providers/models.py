"""Database models of third-party service providers: accounts, API keys and usage counters.

Part of the engine schema (imported by :mod:`skinstation.engine.tables`; created by migration
0002). API keys are stored as the sha256 of the key, found by their public ``key_id``. Usage
and rate-limit counters are rows incremented with atomic upserts, so every API process (and
every node behind a load balancer) counts against the same numbers.
"""

from __future__ import annotations

from datetime import date, datetime
from enum import StrEnum

from sqlalchemy import CheckConstraint, Date, ForeignKey, Index, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from skinstation.engine.base import Base


class KeyScope(StrEnum):
    """What a provider API key may do."""

    CLASSIFY = "classify"
    SUBMIT_FOR_REVIEW = "submit-for-review"


class Provider(Base):
    """A third-party service provider (tele-dermatology app, clinic system, platform)."""

    __tablename__ = "providers"
    __table_args__ = (
        CheckConstraint("requests_per_minute > 0 AND requests_per_day > 0", name="quotas"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    contact: Mapped[str] = mapped_column(String(200))
    requests_per_minute: Mapped[int]
    requests_per_day: Mapped[int]
    disabled: Mapped[bool] = mapped_column(default=False)
    created_by: Mapped[str] = mapped_column(String(128))
    created_at: Mapped[datetime]


class ProviderKey(Base):
    """An API key of a provider: ``spk_<key_id>_<secret>``, stored as its sha256 only.

    ``expires_at`` is set when the key was rotated with a grace period; ``revoked_at`` when it
    was revoked (or rotated without grace). ``rotated_from_id`` links a key to the one it
    replaced.
    """

    __tablename__ = "provider_keys"

    id: Mapped[int] = mapped_column(primary_key=True)
    provider_id: Mapped[int] = mapped_column(ForeignKey("providers.id"), index=True)
    key_id: Mapped[str] = mapped_column(String(16), unique=True)
    key_hash: Mapped[str] = mapped_column(String(64))
    scopes: Mapped[str] = mapped_column(String(100))
    label: Mapped[str] = mapped_column(String(200))
    created_by: Mapped[str] = mapped_column(String(128))
    created_at: Mapped[datetime]
    expires_at: Mapped[datetime | None]
    revoked_at: Mapped[datetime | None]
    revoked_by: Mapped[str | None] = mapped_column(String(128))
    last_used_at: Mapped[datetime | None]
    rotated_from_id: Mapped[int | None] = mapped_column(ForeignKey("provider_keys.id"))


class ProviderUsage(Base):
    """A provider's calls on one UTC day; ``requests`` is also the daily quota counter.

    ``requests`` counts calls admitted by the rate limiter (= classified + rejected + failed);
    ``throttled`` (429) and ``busy`` (503) calls were not admitted and are not in it.
    """

    __tablename__ = "provider_usage"
    __table_args__ = (UniqueConstraint("provider_id", "day"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    provider_id: Mapped[int] = mapped_column(ForeignKey("providers.id"))
    day: Mapped[date] = mapped_column(Date())
    requests: Mapped[int] = mapped_column(default=0)
    classified: Mapped[int] = mapped_column(default=0)
    not_assessable: Mapped[int] = mapped_column(default=0)
    submitted: Mapped[int] = mapped_column(default=0)
    rejected: Mapped[int] = mapped_column(default=0)
    failed: Mapped[int] = mapped_column(default=0)
    throttled: Mapped[int] = mapped_column(default=0)
    busy: Mapped[int] = mapped_column(default=0)


class ProviderRateWindow(Base):
    """Admitted calls of a provider in one UTC minute (the per-minute limit's counter)."""

    __tablename__ = "provider_rate_windows"
    __table_args__ = (
        UniqueConstraint("provider_id", "window_start"),
        Index("ix_provider_rate_windows_window_start", "window_start"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    provider_id: Mapped[int] = mapped_column(ForeignKey("providers.id"))
    window_start: Mapped[datetime]
    count: Mapped[int] = mapped_column(default=0)
