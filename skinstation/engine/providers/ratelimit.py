"""Per-provider rate limits and usage counters, kept in the database for every API worker.

Why the database: the API runs as several uvicorn worker processes, possibly on several nodes;
counters in process memory would let each of them admit the full quota. Each admitted call
increments two rows in one transaction with an atomic, *conditional* upsert::

    INSERT INTO provider_rate_windows (provider_id, window_start, count) VALUES (:p, :minute, 1)
    ON CONFLICT (provider_id, window_start) DO UPDATE SET count = count + 1
    WHERE provider_rate_windows.count < :per_minute RETURNING count

and the same on ``provider_usage.requests`` for the UTC day. No row returned means the window
is full: the transaction is rolled back (so a refused call consumes nothing) and the call is
answered 429 with ``Retry-After`` = seconds until the window ends. PostgreSQL serialises
concurrent upserts of one row with its row lock and re-checks the condition on the latest
version; SQLite takes its write lock at ``BEGIN IMMEDIATE``. Counts are therefore exact under
any concurrency, which a read-then-write check would not be.

Windows are fixed UTC minutes and days (simple, exact, cheap; a client may fit two minutes'
worth of calls around a minute boundary). Minute rows older than an hour are pruned by the
first call of each new minute.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import Table, delete, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from skinstation.core.timeutil import utc_now
from skinstation.engine.database import EngineDatabase
from skinstation.engine.errors import RateLimitedError
from skinstation.engine.providers.models import (
    ProviderKey,
    ProviderRateWindow,
    ProviderUsage,
)
from skinstation.engine.providers.service import ProviderPrincipal

USAGE_COUNTERS = ("requests", "classified", "not_assessable", "submitted", "rejected", "failed",
                  "throttled", "busy")
KEEP_WINDOWS = timedelta(hours=1)
LAST_USED_RESOLUTION = timedelta(minutes=1)


@dataclass(frozen=True)
class Admission:
    """A call the rate limiter let through: its usage day and what is left of the quotas."""

    day: date
    remaining_minute: int
    remaining_day: int


def _table(model: type[Any]) -> Table:
    table: Table = model.__table__
    return table


def _upsert(session: Session, table: Table, keys: dict[str, Any], increments: dict[str, int],
            limit: tuple[str, int] | None = None, returning: str | None = None) -> Any:
    """Insert a counter row or add ``increments`` to it, atomically; optionally conditional."""
    dialect = session.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    columns = [c.name for c in table.c if c.name not in keys and c.name != "id"]
    values = {**keys, **{c: increments.get(c, 0) for c in columns}}
    statement = insert(table).values(**values)
    where = None if limit is None else table.c[limit[0]] < limit[1]
    statement = statement.on_conflict_do_update(
        index_elements=list(keys),
        set_={c: table.c[c] + n for c, n in increments.items()},
        where=where,
    )
    if returning is None:
        session.execute(statement)
        return None
    return session.execute(statement.returning(table.c[returning])).scalar()


def increment(session: Session, provider_id: int, day: date, **counters: int) -> None:
    """Add to a provider's usage counters for ``day`` (inside the caller's transaction)."""
    unknown = set(counters) - set(USAGE_COUNTERS)
    if unknown:
        raise ValueError(f"unknown usage counter(s): {', '.join(sorted(unknown))}")
    _upsert(session, _table(ProviderUsage), {"provider_id": provider_id, "day": day},
            {name: value for name, value in counters.items() if value})


def count_refused(db: EngineDatabase, provider_id: int, counter: str,
                  now: datetime | None = None) -> None:
    """Count a call that was not admitted (``throttled`` or ``busy``) in its own transaction."""
    with db.transaction() as session:
        increment(session, provider_id, (now or utc_now()).date(), **{counter: 1})


def admit(db: EngineDatabase, principal: ProviderPrincipal,
          now: datetime | None = None) -> Admission:
    """Let a call through if both of the provider's quotas allow it, counting it.

    Raises:
        RateLimitedError: A quota is used up (the call is counted as ``throttled`` only).
    """
    now = now or utc_now()
    minute = now.replace(second=0, microsecond=0)
    day = now.date()
    try:
        with db.transaction() as session:
            in_minute = _upsert(session, _table(ProviderRateWindow),
                                {"provider_id": principal.provider_id, "window_start": minute},
                                {"count": 1}, ("count", principal.requests_per_minute), "count")
            if in_minute is None:
                wait = (minute + timedelta(minutes=1) - now).total_seconds()
                raise RateLimitedError(
                    f"rate limit of {principal.requests_per_minute} requests per minute reached "
                    f"for provider {principal.provider_name!r}; retry after Retry-After seconds",
                    math.ceil(wait))
            in_day = _upsert(session, _table(ProviderUsage),
                             {"provider_id": principal.provider_id, "day": day},
                             {"requests": 1}, ("requests", principal.requests_per_day),
                             "requests")
            if in_day is None:  # leaving the block rolls the minute's increment back
                midnight = datetime.combine(day + timedelta(days=1), datetime.min.time(),
                                            now.tzinfo)
                raise RateLimitedError(
                    f"daily quota of {principal.requests_per_day} requests reached for provider "
                    f"{principal.provider_name!r}; retry after Retry-After seconds",
                    math.ceil((midnight - now).total_seconds()))
            if in_minute == 1:
                session.execute(delete(ProviderRateWindow).where(
                    ProviderRateWindow.provider_id == principal.provider_id,
                    ProviderRateWindow.window_start < minute - KEEP_WINDOWS))
            session.execute(update(ProviderKey).where(
                ProviderKey.key_id == principal.key_id,
                (ProviderKey.last_used_at.is_(None))
                | (ProviderKey.last_used_at < now - LAST_USED_RESOLUTION),
            ).values(last_used_at=now))
    except RateLimitedError:
        count_refused(db, principal.provider_id, "throttled", now)
        raise
    return Admission(day, principal.requests_per_minute - in_minute,
                     principal.requests_per_day - in_day)
