"""The sync outbox state machine and concurrent writers on one SQLite file."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
from sqlalchemy import func, select

from skinstation.settings import Settings
from skinstation.storage import (
    Capture,
    NotFoundError,
    Outbox,
    OutboxState,
    StationStore,
    StorageError,
    init_database,
)
from tests.test_storage_helpers import FakeClock, add_operator

T0 = datetime(2025, 3, 14, 9, 0, tzinfo=UTC)


def _save(store: StationStore, visit_id: int, operator_id: int, value: int) -> Capture:
    return store.save_capture(
        visit_id,
        np.full((6, 6, 3), value, np.uint8),
        band="white",
        body_site="arm",
        device_id="cam",
        operator_id=operator_id,
        access_time=T0,
        capture_time=T0,
    )


def test_outbox_moves_pending_sent_confirmed_and_retries(settings: Settings) -> None:
    database = init_database(settings)
    clock = FakeClock()
    operator = add_operator(database, "sam", "staff")
    store = StationStore(database, clock=clock)
    visit = store.open_visit(
        store.create_patient("P-1", actor_id=operator).id, operator_id=operator
    )
    first, second = (_save(store, visit.id, operator, v) for v in (1, 2))
    outbox = Outbox(database, clock=clock)
    assert [e.capture_id for e in outbox.pending()] == [first.id, second.id]

    clock.advance(minutes=1)
    sent = outbox.mark_sent(first.id)
    assert (sent.state, sent.attempts, sent.sent_at) == ("sent", 1, clock.now)
    failed = outbox.mark_failed(first.id, "engine unreachable: connection refused")
    assert (failed.state, failed.attempts, failed.last_error) == (
        "pending",
        1,
        "engine unreachable: connection refused",
    )
    outbox.mark_sent(first.id)
    clock.advance(minutes=1)
    confirmed = outbox.mark_confirmed(first.id)
    assert (confirmed.state, confirmed.attempts, confirmed.confirmed_at) == (
        "confirmed",
        2,
        clock.now,
    )
    assert store.get_capture(first.id, actor_id=operator).uploaded_at == clock.now
    assert store.get_capture(second.id, actor_id=operator).uploaded_at is None
    assert outbox.counts() == {
        OutboxState.PENDING: 1,
        OutboxState.SENT: 0,
        OutboxState.CONFIRMED: 1,
    }
    with pytest.raises(StorageError, match="is confirmed; cannot move to sent"):
        outbox.mark_sent(first.id)
    with pytest.raises(NotFoundError, match="capture 99 is not in the outbox"):
        outbox.mark_failed(99, "x")


def test_two_writers_on_one_sqlite_file_both_succeed(settings: Settings) -> None:
    setup = init_database(settings)
    operator = add_operator(setup, "sam", "staff")
    store = StationStore(setup)
    visit = store.open_visit(
        store.create_patient("P-1", actor_id=operator).id, operator_id=operator
    )
    errors: list[BaseException] = []

    def writer(offset: int) -> None:
        own = StationStore(init_database(settings))  # its own engine, as another process would
        try:
            for i in range(15):
                _save(own, visit.id, operator, offset + i)
                own.history(actor_id=operator, since=T0 - timedelta(days=1))
        except BaseException as error:  # reported below
            errors.append(error)
        finally:
            own.database.dispose()

    threads = [threading.Thread(target=writer, args=(offset,)) for offset in (0, 100)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert errors == []
    with setup.transaction() as session:
        assert session.scalar(select(func.count()).select_from(Capture)) == 30
    assert Outbox(setup).counts()[OutboxState.PENDING] == 30
