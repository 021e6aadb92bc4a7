"""Audit logs are hash-chained: a row changed, removed or reordered behind the triggers shows.

Run on the station's and the engine's databases, SQLite and PostgreSQL; the verify commands
run through the real CLI entry point.
"""

from __future__ import annotations

import contextlib
import itertools
import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, text

from skinstation.cli import main
from skinstation.core.auditchain import GENESIS, link_hash
from skinstation.core.sqlbase import create_database_engine
from skinstation.engine.audit import service as engine_audit
from skinstation.engine.database import open_engine_database
from skinstation.settings import Settings
from skinstation.storage import init_database
from skinstation.storage.audit import record_audit, verify_audit_log
from skinstation.storage.database import MIGRATIONS
from tests.test_storage_helpers import BACKENDS, open_backend, postgres_schema_url

AT = datetime(2026, 12, 3, 9, 30, 15, 123456, tzinfo=UTC)


@contextlib.contextmanager
def _station(settings: Settings, backend: str) -> Iterator[tuple[Any, Callable[[Any], Any]]]:
    with open_backend(settings, backend) as database:
        def write(index: int) -> None:
            with database.transaction() as session:
                record_audit(session, at=AT, station_id="st-1", actor_id=None,
                             action="capture.viewed", entity_type="capture",
                             entity_id=index, detail={"n": index, "note": "한국어 ok"})
        yield database, write


@contextlib.contextmanager
def _engine(settings: Settings, backend: str) -> Iterator[tuple[Any, Callable[[Any], Any]]]:
    with contextlib.ExitStack() as stack:
        url = "" if backend == "sqlite" else stack.enter_context(postgres_schema_url())
        db = open_engine_database(settings.replace(engine={"database_url": url}))
        stack.callback(db.dispose)

        def write(index: int) -> None:
            with db.transaction() as session:
                engine_audit.record(session, "account:drkim", "capture.viewed", "capture",
                                    index, {"n": index}, at=AT)
        yield db, write


def _verify(kind: str, db: Any) -> Any:
    with db.transaction() as session:
        return verify_audit_log(session) if kind == "station" else engine_audit.verify(session)


def _bypass_triggers(engine: Engine, statement: str) -> None:
    """What an attacker with the database file or superuser rights can do."""
    with engine.begin() as connection:
        if engine.dialect.name == "sqlite":
            connection.exec_driver_sql("DROP TRIGGER IF EXISTS trg_audit_log_no_update")
            connection.exec_driver_sql("DROP TRIGGER IF EXISTS trg_audit_log_no_delete")
        else:
            connection.exec_driver_sql("ALTER TABLE audit_log DISABLE TRIGGER USER")
        connection.execute(text(statement))


OPENERS = {"station": _station, "engine": _engine}


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("kind", ["station", "engine"])
def test_the_chain_verifies_and_links_every_row(settings: Settings, backend: str,
                                                kind: str) -> None:
    with OPENERS[kind](settings, backend) as (db, write):
        before = _verify(kind, db).rows
        for index in range(5):
            write(index)
        report = _verify(kind, db)
        assert report.intact and report.rows == before + 5
        with db.engine.connect() as connection:
            rows = connection.execute(text(
                "SELECT id, prev_hash, row_hash FROM audit_log ORDER BY id")).all()
        assert rows[0].prev_hash == GENESIS
        assert all(b.prev_hash == a.row_hash for a, b in itertools.pairwise(rows))
        assert len({row.row_hash for row in rows}) == len(rows)
        assert report.head == rows[-1].row_hash


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("kind", ["station", "engine"])
def test_a_changed_row_and_a_removed_row_are_found(settings: Settings, backend: str,
                                                   kind: str) -> None:
    with OPENERS[kind](settings, backend) as (db, write):
        for index in range(6):
            write(index)
        with db.engine.connect() as connection:
            ids = connection.execute(text("SELECT id FROM audit_log ORDER BY id")).scalars().all()
        changed, removed = ids[-5], ids[-2]
        _bypass_triggers(db.engine, f"UPDATE audit_log SET action = 'capture.deleted' "
                                    f"WHERE id = {changed}")
        _bypass_triggers(db.engine, f"DELETE FROM audit_log WHERE id = {removed}")
        report = _verify(kind, db)
        assert not report.intact
        assert report.breaks == [
            (changed, "content changed after it was written"),
            (ids[-1], "link broken: a row before it was removed, added or reordered"),
        ]


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("kind", ["station", "engine"])
def test_a_forged_hash_breaks_the_next_link(settings: Settings, backend: str, kind: str) -> None:
    with OPENERS[kind](settings, backend) as (db, write):
        for index in range(3):
            write(index)
        with db.engine.connect() as connection:
            last_two = connection.execute(text(
                "SELECT id, prev_hash FROM audit_log ORDER BY id DESC LIMIT 2")).all()
        middle = last_two[1]
        forged = link_hash(middle.prev_hash, {"anything": "else"})
        _bypass_triggers(db.engine, f"UPDATE audit_log SET row_hash = '{forged}', "
                                    f"action = 'x' WHERE id = {middle.id}")
        breaks = _verify(kind, db).breaks
        assert [row_id for row_id, _ in breaks] == [middle.id, last_two[0].id]


PG_ONLY = [b for b in BACKENDS if b != "sqlite"]


@pytest.mark.parametrize("backend", PG_ONLY)
@pytest.mark.parametrize("kind", ["station", "engine"])
def test_parallel_writers_keep_one_chain(settings: Settings, backend: str, kind: str) -> None:
    with OPENERS[kind](settings, backend) as (db, write):
        errors: list[BaseException] = []

        def writer(offset: int) -> None:
            try:
                for index in range(15):
                    write(offset + index)
            except BaseException as error:
                errors.append(error)

        before = _verify(kind, db).rows
        threads = [threading.Thread(target=writer, args=(100 * n,)) for n in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert errors == []
        report = _verify(kind, db)
        assert report.intact, report.breaks
        assert report.rows == before + 60


def test_rows_written_before_the_chain_are_sealed_by_the_migration(settings: Settings) -> None:
    url = f"sqlite:///{settings.home / 'old.db'}"
    settings.home.mkdir(parents=True, exist_ok=True)
    engine = create_database_engine(url)
    MIGRATIONS.upgrade(engine, "0002")
    with engine.begin() as connection:
        for index in range(3):
            connection.execute(text(
                "INSERT INTO audit_log (occurred_at, actor_id, station_id, action, detail) "
                "VALUES (:at, NULL, 'st-1', 'login.failed', :detail)"),
                {"at": datetime(2025, 1, 1, 8, index), "detail": f'{{"n": {index}}}'})
    engine.dispose()
    database = init_database(settings.replace(database_url=url))
    try:
        report = _verify("station", database)
        assert report.intact and report.rows == 3
        with database.engine.begin() as connection, pytest.raises(Exception,
                                                                   match="append-only"):
            connection.execute(text("UPDATE audit_log SET action = 'x'"))
    finally:
        database.dispose()


def test_verify_commands_print_the_head_and_fail_on_a_broken_log(
    settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from tests.test_engine_helpers import write_engine_config

    config = write_engine_config(tmp_path / "skin.toml", home=tmp_path / "home",
                                 data_dir=settings.data_dir,
                                 engine={"home": str(tmp_path / "eng")})
    monkeypatch.setenv("SKINSTATION_CONFIG", str(config))
    loaded = Settings.load(env={}, config_file=config)
    station = init_database(loaded)
    with station.transaction() as session:
        for index in range(2):
            record_audit(session, at=AT, station_id="st-1", actor_id=None, action="logout",
                         detail={"n": index})
    with station.engine.connect() as connection:
        head = connection.execute(text(
            "SELECT row_hash FROM audit_log ORDER BY id DESC LIMIT 1")).scalar_one()
        count = connection.execute(text("SELECT count(*) FROM audit_log")).scalar_one()
    assert main(["audit", "verify"]) == 0
    assert capsys.readouterr().out.strip() == (
        f"station audit log intact: {count} rows, head {head}")
    _bypass_triggers(station.engine, "UPDATE audit_log SET detail = '{\"n\": 7}' WHERE id = "
                                     "(SELECT max(id) FROM audit_log)")
    station.dispose()
    assert main(["audit", "verify"]) == 1
    out = capsys.readouterr().out.strip().splitlines()
    assert out[0] == f"station audit log BROKEN: 1 of {count} rows fail"
    assert out[1].endswith(": content changed after it was written")

    assert main(["engine", "init"]) == 0
    capsys.readouterr()
    assert main(["engine", "audit", "--verify"]) == 0
    assert capsys.readouterr().out.strip().startswith("engine audit log intact: ")
