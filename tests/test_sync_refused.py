"""One bad capture never blocks a station: against a real engine process over HTTPS, on SQLite
and PostgreSQL. A record that cannot be sent or that the engine refuses (4xx) is set aside as
refused with its reason while later captures go through; a capture the engine answers with a
server error every time (a fault injected in the engine's database) is refused after
``sync.max_server_errors`` rounds, and after the fix an administrator's retry uploads it; an
engine failing every upload ends the round and sets nothing aside. The engine's confirmation and
the station's ``capture.uploaded`` audit row commit together, once per capture."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from sqlalchemy import func, select, text
from sqlalchemy.exc import DBAPIError

from skinstation.engine.ingest.models import Capture as EngineCapture
from skinstation.engine.ingest.models import Patient as EnginePatient
from skinstation.storage import Capture, StationStore
from skinstation.storage.models import AuditEvent, OutboxEntry
from skinstation.sync.credentials import CredentialStore
from skinstation.sync.runner import SyncRunner, enroll_station
from tests.test_engine_helpers import (
    ADMIN_PASSWORD,
    EngineUnderTest,
    Station,
    add_capture,
    file_keyring,
    ham_images,
    make_station,
    running_engine,
    station_settings,
)
from tests.test_storage_helpers import BACKENDS
from tests.test_storage_outbox import inject_audit_fault, remove_audit_fault

SERVER_ERROR = "engine error 500 on POST /captures: Internal Server Error"


@pytest.fixture(scope="module", params=BACKENDS)
def engine(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory,
           data_dir: Path) -> Iterator[EngineUnderTest]:
    folder = tmp_path_factory.mktemp(f"refused-engine-{request.param}")
    with running_engine(folder, data_dir, request.param) as running:
        yield running


@pytest.fixture()
def keyring_backend(tmp_path: Path) -> object:
    return file_keyring(tmp_path / "xdg" / "python_keyring" / "keyring_pass.cfg")


_IMAGES = iter(range(1400, 4000, 10))


def _images(engine: EngineUnderTest, count: int) -> list[Path]:
    """Real images no other test (on this engine) uploads."""
    return ham_images(Path(engine.settings.data_dir) / "ham10000", count, skip=next(_IMAGES))


def _station(engine: EngineUnderTest, tmp_path: Path, keyring_backend: object, name: str,
             **sync: object) -> tuple[Station, SyncRunner, int]:
    # one retry per request: uvicorn closes the connection after a 500, and the next request
    # may find the pooled connection closed (a real station retries 3 times)
    settings = station_settings(tmp_path, engine.url, engine.tls, name=name, retries=1, **sync)
    credentials = CredentialStore(settings.station_id, keyring_backend)
    admin = engine.login("admin", ADMIN_PASSWORD)
    enroll_station(settings, engine.enrollment_code(admin, name), credentials)
    station = make_station(settings)
    runner = SyncRunner(settings, station.database, credentials=credentials)
    return station, runner, credentials.load().station_id


def _engine_uids(engine: EngineUnderTest, station_id: int) -> list[str]:
    with engine.db.transaction() as session:
        return list(session.scalars(select(EngineCapture.uid).where(
            EngineCapture.station_id == station_id).order_by(EngineCapture.id)))


def _outbox(station: Station) -> list[tuple[int, str, int, int]]:
    with station.database.transaction() as session:
        rows = session.execute(select(OutboxEntry.capture_id, OutboxEntry.state,
                                      OutboxEntry.attempts, OutboxEntry.server_errors)
                               .order_by(OutboxEntry.id))
        return [tuple(row) for row in rows]


def _uploaded_audit(station: Station) -> list[tuple[str | None, bool]]:
    with station.database.transaction() as session:
        rows = session.execute(select(AuditEvent.entity_id, AuditEvent.detail).where(
            AuditEvent.action == "capture.uploaded").order_by(AuditEvent.id))
        return [(entity, detail["duplicate"]) for entity, detail in rows]


def _confirmed(station: Station) -> list[str]:
    return [str(capture_id) for capture_id, state, _, _ in _outbox(station)
            if state == "confirmed"]


@contextmanager
def engine_fault(engine: EngineUnderTest, uid: str | None = None) -> Iterator[None]:
    """The engine's database refuses to store capture ``uid`` (every capture if None): the
    engine answers 500, as with any server fault. Removed on exit."""
    postgres = engine.db.engine.dialect.name == "postgresql"
    when = "" if uid is None else f"WHEN (NEW.uid = '{uid}')"
    if postgres:
        statements = ["CREATE FUNCTION inject_fault() RETURNS trigger LANGUAGE plpgsql AS "
                      "$$ BEGIN RAISE EXCEPTION 'injected fault'; END $$",
                      f"CREATE TRIGGER inject_fault BEFORE INSERT ON captures FOR EACH ROW "
                      f"{when} EXECUTE FUNCTION inject_fault()"]
        cleanup = ["DROP TRIGGER inject_fault ON captures", "DROP FUNCTION inject_fault()"]
    else:
        statements = [f"CREATE TRIGGER inject_fault BEFORE INSERT ON captures {when} BEGIN "
                      "SELECT RAISE(ABORT, 'injected fault'); END"]
        cleanup = ["DROP TRIGGER inject_fault"]
    with engine.db.engine.begin() as connection:
        for statement in statements:
            connection.exec_driver_sql(statement)
    try:
        yield
    finally:
        with engine.db.engine.begin() as connection:
            for statement in cleanup:
                connection.exec_driver_sql(statement)


def test_unsendable_and_engine_refused_captures_are_set_aside_and_the_rest_is_stored(
    engine: EngineUnderTest, tmp_path: Path, keyring_backend: object
) -> None:
    station, runner, station_id = _station(engine, tmp_path, keyring_backend, "st-nul",
                                           send_patient_names=True)
    runner.settings = runner.settings.replace(store_patient_names=True)
    images = _images(engine, 7)
    nul = add_capture(station, images[0])  # its patient's pseudonym gets a NUL below
    with station.database.engine.begin() as connection:  # a record from before validation
        connection.execute(text("UPDATE patients SET pseudonym = :p"), {"p": "P-\x00001"})
    named_store = StationStore(station.database, store_patient_names=True)
    named = named_store.create_patient("P-named", actor_id=station.operator_id, name="Jane Roe")
    station.visit_id = named_store.open_visit(named.id, operator_id=station.operator_id).id
    named_capture = add_capture(station, images[1], minutes=1)  # its name: the engine says 422
    clean = named_store.create_patient("P-0002", actor_id=station.operator_id)
    station.visit_id = named_store.open_visit(clean.id, operator_id=station.operator_id).id
    later = [add_capture(station, image, minutes=2 + i) for i, image in enumerate(images[2:])]

    status = runner.sync_once()
    name_refusal = ("engine refused (422): this engine accepts pseudonyms only; the station "
                    "sent a patient name (turn off sync.send_patient_names); nothing stored")
    local = status.refused_captures[nul.id]
    assert local.startswith("local capture unusable, not sent: pseudonym: ")
    assert "U+0000" in local and "\x00" not in local
    assert status.refused_captures == {nul.id: local, named_capture.id: name_refusal}
    assert (status.state, status.queue_length, status.confirmed) == ("error", 0, 5)
    assert status.last_error == f"2 capture(s) refused by the engine; first: {local}"
    assert _engine_uids(engine, station_id) == [c.uid for c in later]
    with engine.db.transaction() as session:
        assert session.scalars(select(EnginePatient.pseudonym).where(
            EnginePatient.station_id == station_id)).all() == ["P-0002"]
    assert _outbox(station) == [(nul.id, "refused", 0, 0), (named_capture.id, "refused", 1, 0),
                                *[(c.id, "confirmed", 1, 0) for c in later]]
    with station.database.transaction() as session:  # nothing deleted on the station
        assert session.scalar(select(func.count()).select_from(Capture)) == 7
    assert _uploaded_audit(station) == [(str(c.id), False) for c in later]

    status = runner.sync_once()  # set aside: the next round has nothing to send
    assert (status.state, status.queue_length, status.confirmed) == ("idle", 0, 5)
    assert set(status.refused_captures) == {nul.id, named_capture.id}
    assert len(_engine_uids(engine, station_id)) == 5


def test_a_persistent_server_error_is_refused_after_max_rounds_then_retried_after_the_fix(
    engine: EngineUnderTest, tmp_path: Path, keyring_backend: object
) -> None:
    station, runner, station_id = _station(engine, tmp_path, keyring_backend, "st-500")
    assert runner.settings.sync.max_server_errors == 5
    images = iter(_images(engine, 7))
    bad = add_capture(station, next(images))
    others: list[Capture] = []
    with engine_fault(engine, bad.uid):
        for round_number in range(1, 5):
            others.append(add_capture(station, next(images), minutes=round_number))
            status = runner.sync_once()
            assert (status.state, status.queue_length, status.refused_captures) == (
                "error", 1, {})
            assert status.last_error == ("1 capture(s) got a server error from the engine (set "
                                         f"aside after 5); first: {SERVER_ERROR}")
            assert _outbox(station)[0] == (bad.id, "pending", round_number, round_number)
            assert _engine_uids(engine, station_id) == [c.uid for c in others]
        others.append(add_capture(station, next(images), minutes=5))
        status = runner.sync_once()
        reason = f"{SERVER_ERROR}; set aside after 5 server errors"
        assert (status.state, status.queue_length, status.confirmed) == ("error", 0, 5)
        assert status.refused_captures == {bad.id: reason}
        assert status.last_error == f"1 capture(s) refused by the engine; first: {reason}"
        assert _outbox(station) == [(bad.id, "refused", 5, 5),
                                    *[(c.id, "confirmed", 1, 0) for c in others]]

        status = runner.sync_once()  # refused: not sent again while the fault lasts
        assert (status.state, status.refused_captures) == ("idle", {bad.id: reason})
        assert _outbox(station)[0] == (bad.id, "refused", 5, 5)
    assert bad.uid not in _engine_uids(engine, station_id)

    # the fault is fixed; the administrator puts the capture back and it uploads
    assert runner.retry_refused() == [bad.id]
    assert _outbox(station)[0] == (bad.id, "pending", 5, 0)
    status = runner.sync_once()
    assert (status.state, status.queue_length, status.confirmed) == ("idle", 0, 6)
    assert status.refused_captures == {}
    assert _outbox(station)[0] == (bad.id, "confirmed", 6, 0)
    assert _engine_uids(engine, station_id) == [*[c.uid for c in others], bad.uid]
    assert sorted(entity for entity, _ in _uploaded_audit(station)) == sorted(_confirmed(station))
    with station.database.transaction() as session:
        retried = session.scalars(select(AuditEvent.detail).where(
            AuditEvent.action == "outbox.retried")).all()
    assert retried == [{"reason": reason, "server_errors": 5}]


def test_an_engine_failing_every_upload_ends_the_round_and_sets_nothing_aside(
    engine: EngineUnderTest, tmp_path: Path, keyring_backend: object
) -> None:
    station, runner, station_id = _station(engine, tmp_path, keyring_backend, "st-down500")
    captures = [add_capture(station, image, minutes=i)
                for i, image in enumerate(_images(engine, 3))]
    with engine_fault(engine):
        for round_number in range(1, 7):  # more rounds than max_server_errors
            status = runner.sync_once()
            assert (status.state, status.last_error) == ("offline", SERVER_ERROR)
            assert (status.queue_length, status.refused_captures) == (3, {})
            assert _outbox(station) == [(captures[0].id, "pending", round_number, 0),
                                        (captures[1].id, "pending", round_number, 0),
                                        (captures[2].id, "pending", 0, 0)]
    assert _engine_uids(engine, station_id) == []
    status = runner.sync_once()
    assert (status.state, status.queue_length, status.confirmed) == ("idle", 0, 3)
    assert _engine_uids(engine, station_id) == [c.uid for c in captures]


def test_a_confirmation_whose_audit_row_fails_is_not_kept_and_is_confirmed_once_later(
    engine: EngineUnderTest, tmp_path: Path, keyring_backend: object
) -> None:
    station, runner, station_id = _station(engine, tmp_path, keyring_backend, "st-audit")
    capture = add_capture(station, _images(engine, 1)[0])
    inject_audit_fault(station.database, "sqlite")
    with pytest.raises(DBAPIError, match="injected fault"):
        runner.sync_once()  # as if the station died between the answer and the commit
    assert _engine_uids(engine, station_id) == [capture.uid]
    assert _outbox(station) == [(capture.id, "sent", 1, 0)]
    assert _uploaded_audit(station) == []
    with station.database.transaction() as session:
        assert session.get(Capture, capture.id).uploaded_at is None

    remove_audit_fault(station.database)
    status = runner.sync_once()
    assert (status.state, status.queue_length, status.confirmed) == ("idle", 0, 1)
    assert _outbox(station) == [(capture.id, "confirmed", 1, 0)]  # "sent": uploaded again
    assert _uploaded_audit(station) == [(str(capture.id), True)]  # the engine already had it
    assert _engine_uids(engine, station_id) == [capture.uid]


def test_sync_retry_command_puts_refused_captures_back(
    tmp_path: Path, ham_dir: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str]
) -> None:
    from skinstation.cli import main
    from skinstation.settings import Settings
    from skinstation.storage import Outbox

    config = tmp_path / "station.toml"
    config.write_text(f'home = "{tmp_path / "st-cli"}"\nstation_id = "st-cli"\n',
                      encoding="utf-8")
    monkeypatch.setenv("SKINSTATION_CONFIG", str(config))
    monkeypatch.delenv("SKINSTATION_HOME", raising=False)
    station = make_station(Settings.load(env={}, config_file=config))
    first, second = (add_capture(station, image, minutes=i)
                     for i, image in enumerate(ham_images(ham_dir, 2, skip=1390)))
    outbox = Outbox(station.database)
    for capture in (first, second):
        outbox.mark_refused(capture.id, "engine refused (409): other bytes under this uid")

    assert main(["sync", "retry", "--capture", str(second.id)]) == 0
    assert capsys.readouterr().out == (f"put back 1 refused capture(s): {second.id}; they are "
                                       "sent at the next sync round\n")
    assert main(["sync", "retry", "--capture", str(second.id)]) == 1
    assert capsys.readouterr().err == (f"error: outbox entry of capture {second.id} is pending; "
                                       "only refused captures can be retried\n")
    assert main(["sync", "retry"]) == 0
    assert capsys.readouterr().out == (f"put back 1 refused capture(s): {first.id}; they are "
                                       "sent at the next sync round\n")
    assert main(["sync", "retry"]) == 0
    assert capsys.readouterr().out == "no refused captures\n"
    assert [(e.capture_id, e.state) for e in outbox.unconfirmed()] == [
        (first.id, "pending"), (second.id, "pending")]
