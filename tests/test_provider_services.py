"""Provider accounts, API keys and database-kept rate limits, at the service level.

Real engine databases (SQLite file and a private PostgreSQL schema); concurrency with real
threads, each call in its own transaction as the API workers make them.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import threading
from collections.abc import Iterator

import pytest
from sqlalchemy import func, select

from skinstation.engine.audit import service as audit
from skinstation.engine.database import EngineDatabase
from skinstation.engine.errors import (
    ForbiddenError,
    InvalidError,
    NotFoundError,
    RateLimitedError,
    UnauthorizedError,
)
from skinstation.engine.providers import ratelimit
from skinstation.engine.providers import service as providers
from skinstation.engine.providers.models import KeyScope, ProviderKey, ProviderRateWindow
from skinstation.settings import Settings
from tests.test_engine_schema import engine_db
from tests.test_storage_helpers import BACKENDS


@pytest.fixture(params=BACKENDS)
def db(request: pytest.FixtureRequest, settings: Settings) -> Iterator[EngineDatabase]:
    with engine_db(settings, request.param) as opened:
        yield opened


def _actions(db: EngineDatabase) -> list[tuple[str, str, str | None]]:
    with db.transaction() as session:
        return [(row.actor, row.action, row.entity_id) for row in audit.query(session)]


def test_keys_are_hashed_scoped_revocable_and_rotatable(db: EngineDatabase) -> None:
    created = providers.create_provider(db, "Acme Tele", actor="account:root",
                                        requests_per_minute=5, requests_per_day=100)
    assert (created.provider_id, created.requests_per_minute, created.disabled) == (1, 5, False)
    with pytest.raises(Exception, match="provider 'Acme Tele' already exists"):
        providers.create_provider(db, "Acme Tele", actor="account:root")
    with pytest.raises(InvalidError, match="scopes must be one or more of classify, "
                                           "submit-for-review; got delete"):
        providers.create_key(db, "Acme Tele", actor="account:root", scopes=["delete"])

    issued = providers.create_key(db, "Acme Tele", actor="account:root",
                                  scopes=["submit-for-review", "classify"], label="prod")
    key_id = issued.key_id
    assert issued.key.startswith(f"spk_{key_id}_") and len(issued.key) == 4 + 12 + 1 + 43
    assert issued.scopes == ["classify", "submit-for-review"]
    with db.transaction() as session:
        row = session.scalar(select(ProviderKey).where(ProviderKey.key_id == key_id))
        assert row.key_hash == hashlib.sha256(issued.key.encode()).hexdigest()
        stored = " ".join(str(v) for v in row.__dict__.values())
    assert issued.key not in stored and issued.key.split("_", 2)[2] not in stored

    principal = providers.authenticate_key(db, issued.key)
    assert (principal.provider_name, principal.key_id, principal.actor) == (
        "Acme Tele", key_id, f"provider:1/{key_id}")
    assert principal.require(KeyScope.SUBMIT_FOR_REVIEW) is principal
    wrong = issued.key[:-3] + ("AAA" if not issued.key.endswith("AAA") else "BBB")
    for bad in (wrong, "spk_000000000000_" + "A" * 43, "sst_station-token", ""):
        with pytest.raises(UnauthorizedError, match=r"^invalid API key$"):
            providers.authenticate_key(db, bad)

    classify_only = providers.create_key(db, 1, actor="account:root")
    limited = providers.authenticate_key(db, classify_only.key)
    with pytest.raises(ForbiddenError, match=f"^API key {classify_only.key_id} lacks the "
                                             "'submit-for-review' scope \\(it has: classify\\)$"):
        limited.require(KeyScope.SUBMIT_FOR_REVIEW)

    # rotation with a grace period: both keys work until the old one's expiry
    rotated = providers.rotate_key(db, key_id, actor="account:root", grace_seconds=3600)
    assert rotated.rotated_from == key_id and rotated.scopes == issued.scopes
    assert providers.authenticate_key(db, issued.key).key_id == key_id
    assert providers.authenticate_key(db, rotated.key).key_id == rotated.key_id
    with db.transaction() as session:
        row = session.scalar(select(ProviderKey).where(ProviderKey.key_id == key_id))
        row.expires_at = row.expires_at - dt.timedelta(hours=2)
    with pytest.raises(UnauthorizedError, match=f"^API key {key_id} expired after rotation; "
                                                "use the key that replaced it$"):
        providers.authenticate_key(db, issued.key)
    with pytest.raises(InvalidError, match="is revoked or expired; create a new key"):
        providers.rotate_key(db, key_id, actor="account:root")

    # rotation without grace ends the old key at once; revocation is final
    again = providers.rotate_key(db, rotated.key_id, actor="cli:ops")
    with pytest.raises(UnauthorizedError, match=f"^API key {rotated.key_id} was revoked"):
        providers.authenticate_key(db, rotated.key)
    revoked = providers.revoke_key(db, again.key_id, actor="cli:ops")
    assert revoked.active is False and revoked.revoked_at is not None
    assert providers.revoke_key(db, again.key_id, actor="cli:ops") == revoked
    with pytest.raises(UnauthorizedError, match="was revoked; ask the engine administrator"):
        providers.authenticate_key(db, again.key)
    with pytest.raises(NotFoundError, match=r"^API key 0123456789ab does not exist$"):
        providers.revoke_key(db, "0123456789ab", actor="cli:ops")

    providers.update_provider(db, "Acme Tele", actor="cli:ops", disabled=True)
    with pytest.raises(ForbiddenError, match=r"^provider 'Acme Tele' is disabled on this engine$"):
        providers.authenticate_key(db, classify_only.key)
    assert [(k.key_id, k.active) for k in providers.list_keys(db, "Acme Tele")] == [
        (key_id, False), (classify_only.key_id, True), (rotated.key_id, False),
        (again.key_id, False)]
    assert [(a, action) for a, action, _ in _actions(db)] == [
        ("account:root", "provider.created"), ("account:root", "provider_key.created"),
        ("account:root", "provider_key.created"), ("account:root", "provider_key.created"),
        ("account:root", "provider_key.rotated"), ("cli:ops", "provider_key.created"),
        ("cli:ops", "provider_key.rotated"), ("cli:ops", "provider_key.revoked"),
        ("cli:ops", "provider.updated")]


def test_rate_limits_are_exact_under_concurrent_workers(db: EngineDatabase) -> None:
    providers.create_provider(db, "Burst", actor="t", requests_per_minute=7,
                              requests_per_day=1000)
    key = providers.create_key(db, "Burst", actor="t").key
    principal = providers.authenticate_key(db, key)
    now = dt.datetime(2025, 6, 1, 10, 0, 15, tzinfo=dt.UTC)
    outcomes: list[object] = []
    lock = threading.Lock()
    start = threading.Barrier(20)

    def call() -> None:
        start.wait()
        try:
            result: object = ratelimit.admit(db, principal, now)
        except RateLimitedError as error:
            result = error
        with lock:
            outcomes.append(result)

    threads = [threading.Thread(target=call) for _ in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    admitted = [o for o in outcomes if isinstance(o, ratelimit.Admission)]
    refused = [o for o in outcomes if isinstance(o, RateLimitedError)]
    assert (len(admitted), len(refused)) == (7, 13)
    assert sorted(a.remaining_minute for a in admitted) == [0, 1, 2, 3, 4, 5, 6]
    assert {(e.retry_after, str(e)) for e in refused} == {(45, (
        "rate limit of 7 requests per minute reached for provider 'Burst'; retry after "
        "Retry-After seconds"))}
    [day] = providers.usage(db, "Burst", dt.date(2025, 6, 1), dt.date(2025, 6, 1))
    assert (day.requests, day.throttled, day.classified) == (7, 13, 0)

    # the next minute admits again; minute rows older than an hour are pruned
    later = now + dt.timedelta(minutes=61)
    assert ratelimit.admit(db, principal, later).remaining_minute == 6
    with db.transaction() as session:
        windows = session.scalars(select(ProviderRateWindow.window_start)).all()
    assert windows == [later.replace(second=0)]


def test_daily_quota_refusal_gives_back_the_minute_slot(db: EngineDatabase) -> None:
    providers.create_provider(db, "Daily", actor="t", requests_per_minute=10,
                              requests_per_day=2)
    principal = providers.authenticate_key(db, providers.create_key(db, "Daily", actor="t").key)
    evening = dt.datetime(2025, 6, 1, 23, 59, 30, tzinfo=dt.UTC)
    assert ratelimit.admit(db, principal, evening).remaining_day == 1
    assert ratelimit.admit(db, principal, evening).remaining_day == 0
    with pytest.raises(RateLimitedError) as refused:
        ratelimit.admit(db, principal, evening)
    assert (refused.value.retry_after, str(refused.value)) == (30, (
        "daily quota of 2 requests reached for provider 'Daily'; retry after Retry-After "
        "seconds"))
    with db.transaction() as session:
        assert session.scalar(select(func.sum(ProviderRateWindow.count))) == 2
    midnight = evening + dt.timedelta(seconds=30)
    assert ratelimit.admit(db, principal, midnight).remaining_day == 1
    usage = providers.usage(db, "Daily", dt.date(2025, 6, 1), dt.date(2025, 6, 2))
    assert [(u.day, u.requests, u.throttled) for u in usage] == [
        (dt.date(2025, 6, 1), 2, 1), (dt.date(2025, 6, 2), 1, 0)]
    with pytest.raises(InvalidError, match="usage range must run forwards"):
        providers.usage(db, "Daily", dt.date(2025, 6, 2), dt.date(2025, 6, 1))
