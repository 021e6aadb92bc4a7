"""The sync outbox state machine (refused entries set aside and retried, the upload audit row
committed with the confirmation), its migration, and concurrent writers on one SQLite file."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
from alembic import command
from sqlalchemy import func, select, text
from sqlalchemy.exc import DBAPIError

from skinstation.settings import Settings
from skinstation.storage import (
    Capture,
    Database,
    NotFoundError,
    Outbox,
    OutboxState,
    StationStore,
    StorageError,
    current_revision,
    head_revision,
    init_database,
)
from skinstation.storage.database import alembic_config
from skinstation.storage.models import AuditEvent, OutboxEntry
from tests.test_storage_helpers import BACKENDS, FakeClock, add_operator, open_backend

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
    confirmed = outbox.mark_confirmed(first.id, engine_capture_id=41, duplicate=False)
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
        OutboxState.REFUSED: 0,
    }
    assert _uploaded_rows(database) == [(str(first.id), {"engine_capture_id": 41,
                                                         "duplicate": False})]
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


def _station(database: Database, clock: FakeClock, count: int) -> tuple[StationStore, list[int]]:
    operator = add_operator(database, "sam", "staff")
    store = StationStore(database, clock=clock)
    visit = store.open_visit(
        store.create_patient("P-1", actor_id=operator).id, operator_id=operator
    )
    return store, [_save(store, visit.id, operator, v).id for v in range(1, count + 1)]


def _audit(database: Database, action: str) -> list[tuple[str | None, int | None, dict]]:
    with database.transaction() as session:
        rows = session.execute(select(AuditEvent.entity_id, AuditEvent.actor_id,
                                      AuditEvent.detail)
                               .where(AuditEvent.action == action).order_by(AuditEvent.id))
        return [tuple(row) for row in rows]


def _uploaded_rows(database: Database) -> list[tuple[str | None, dict]]:
    return [(entity, detail) for entity, _, detail in _audit(database, "capture.uploaded")]


@pytest.mark.parametrize("backend", BACKENDS)
def test_refused_entries_are_set_aside_kept_and_put_back(settings: Settings,
                                                         backend: str) -> None:
    with open_backend(settings, backend) as database:
        clock = FakeClock()
        store, (first, second, third) = _station(database, clock, 3)
        admin = add_operator(database, "root", "admin")
        outbox = Outbox(database, clock=clock)
        outbox.mark_sent(first)
        failed = outbox.mark_failed(first, "engine error 500 on POST /captures: boom",
                                    server_error=True)
        assert (failed.state, failed.server_errors) == ("pending", 1)
        assert outbox.mark_failed(first, "engine unreachable").server_errors == 1
        outbox.mark_sent(first)
        assert outbox.mark_failed(first, "engine error 502", server_error=True).server_errors == 2

        clock.advance(minutes=1)
        reason = "engine refused (422): pseudonym 'P-\x00' holds\na NUL"
        refused = outbox.mark_refused(first, reason)
        assert (refused.state, refused.refused_at, refused.server_errors) == (
            "refused", clock.now, 2)
        stored = "engine refused (422): pseudonym 'P-\\x00' holds a NUL"
        assert refused.last_error == stored
        outbox.mark_sent(second)
        assert outbox.mark_refused(second, "local capture unusable").state == "refused"
        assert [e.capture_id for e in outbox.unconfirmed()] == [third]
        assert [(e.capture_id, e.last_error) for e in outbox.refused()] == [
            (first, stored), (second, "local capture unusable")]
        assert outbox.counts() == {OutboxState.PENDING: 1, OutboxState.SENT: 0,
                                   OutboxState.CONFIRMED: 0, OutboxState.REFUSED: 2}
        assert store.get_capture(first, actor_id=add_operator(database, "kim", "staff")).id \
            == first  # nothing deleted
        with pytest.raises(StorageError, match=f"capture {first} is refused; cannot move to sent"):
            outbox.mark_sent(first)
        with pytest.raises(StorageError, match=f"capture {third} is pending; only refused "
                           "captures can be retried"):
            outbox.retry_refused(third)
        with pytest.raises(NotFoundError, match="capture 99 is not in the outbox"):
            outbox.retry_refused(99)

        clock.advance(minutes=1)
        assert outbox.retry_refused(second, actor_id=admin) == [second]
        assert outbox.retry_refused(actor_id=None) == [first]
        assert outbox.retry_refused() == []
        assert [(e.capture_id, e.state, e.server_errors, e.refused_at, e.updated_at)
                for e in outbox.unconfirmed()] == [
            (first, "pending", 0, None, clock.now), (second, "pending", 0, None, clock.now),
            (third, "pending", 0, None, T0.replace(hour=10))]
        assert _audit(database, "outbox.refused") == [
            (str(first), None, {"reason": stored, "server_errors": 2}),
            (str(second), None, {"reason": "local capture unusable", "server_errors": 0})]
        assert _audit(database, "outbox.retried") == [
            (str(second), admin, {"reason": "local capture unusable", "server_errors": 0}),
            (str(first), None, {"reason": stored, "server_errors": 2})]


_FAULT_SQL = {
    "sqlite": ["CREATE TRIGGER inject_fault BEFORE INSERT ON audit_log "
               "WHEN NEW.action = 'capture.uploaded' BEGIN "
               "SELECT RAISE(ABORT, 'injected fault'); END"],
    "postgresql": ["CREATE FUNCTION inject_fault() RETURNS trigger LANGUAGE plpgsql AS "
                   "$$ BEGIN RAISE EXCEPTION 'injected fault'; END $$",
                   "CREATE TRIGGER inject_fault BEFORE INSERT ON audit_log FOR EACH ROW "
                   "WHEN (NEW.action = 'capture.uploaded') EXECUTE FUNCTION inject_fault()"],
}


def inject_audit_fault(database: Database, backend: str) -> None:
    """Make the database refuse the next ``capture.uploaded`` audit row (until removed)."""
    with database.engine.begin() as connection:
        for statement in _FAULT_SQL[backend]:
            connection.exec_driver_sql(statement)


def remove_audit_fault(database: Database) -> None:
    with database.engine.begin() as connection:
        connection.exec_driver_sql("DROP TRIGGER inject_fault" + (
            " ON audit_log" if database.engine.dialect.name == "postgresql" else ""))


@pytest.mark.parametrize("backend", BACKENDS)
def test_confirmation_and_its_audit_row_commit_together(settings: Settings,
                                                        backend: str) -> None:
    with open_backend(settings, backend) as database:
        clock = FakeClock()
        _, (first, second) = _station(database, clock, 2)
        outbox = Outbox(database, clock=clock)
        outbox.mark_sent(first)
        inject_audit_fault(database, backend)
        with pytest.raises(DBAPIError, match="injected fault"):
            outbox.mark_confirmed(first, engine_capture_id=7, duplicate=False)
        with database.transaction() as session:  # neither the confirmation nor its audit row
            entry = session.scalar(select(OutboxEntry).where(OutboxEntry.capture_id == first))
            assert (entry.state, entry.confirmed_at) == ("sent", None)
            assert session.get(Capture, first).uploaded_at is None
        assert _uploaded_rows(database) == []

        remove_audit_fault(database)
        outbox.mark_confirmed(first, engine_capture_id=7, duplicate=True)
        outbox.mark_confirmed(second, engine_capture_id=8, duplicate=False)
        assert _uploaded_rows(database) == [
            (str(first), {"engine_capture_id": 7, "duplicate": True}),
            (str(second), {"engine_capture_id": 8, "duplicate": False})]
        assert outbox.counts()[OutboxState.CONFIRMED] == 2
        with pytest.raises(StorageError, match="is confirmed; cannot move to confirmed"):
            outbox.mark_confirmed(first, engine_capture_id=7, duplicate=True)
        assert len(_uploaded_rows(database)) == 2


@pytest.mark.parametrize("backend", BACKENDS)
def test_migration_0005_keeps_outbox_rows_both_ways(settings: Settings, backend: str) -> None:
    with open_backend(settings, backend) as database:
        clock = FakeClock()
        _, (first, second) = _station(database, clock, 2)
        outbox = Outbox(database, clock=clock)
        outbox.mark_sent(first)
        outbox.mark_failed(first, "engine error 500", server_error=True)
        outbox.mark_refused(first, "engine refused (422): bad")
        config = alembic_config(database.engine)
        command.downgrade(config, "0004")
        assert current_revision(database.engine) == "0004"
        with database.engine.connect() as connection:
            rows = connection.execute(text(
                "SELECT capture_id, state, attempts, last_error FROM outbox ORDER BY id")).all()
        assert [tuple(r) for r in rows] == [(first, "pending", 1, "engine refused (422): bad"),
                                            (second, "pending", 0, None)]
        command.upgrade(config, "head")
        assert current_revision(database.engine) == head_revision()
        assert [(e.capture_id, e.state, e.attempts, e.server_errors, e.refused_at)
                for e in outbox.unconfirmed()] == [(first, "pending", 1, 0, None),
                                                   (second, "pending", 0, 0, None)]
        assert outbox.mark_refused(second, "again").state == "refused"
        with pytest.raises(DBAPIError, match=r"ck_outbox_state|CHECK constraint"), \
                database.engine.begin() as connection:
            connection.execute(text("UPDATE outbox SET state = 'lost'"))
