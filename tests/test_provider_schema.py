"""Migration 0002 (providers) upgrades a populated 0001 engine database and back again."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import pytest
from alembic import command
from sqlalchemy import text
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError

from skinstation.engine.database import alembic_config, current_revision
from skinstation.settings import Settings
from skinstation.storage.database import create_station_engine
from tests.test_storage_helpers import BACKENDS, postgres_schema_url

T = "'2025-05-01 09:00:00'"
CAPTURE_COLUMNS = (
    "uid, station_id, session_id, band, body_site, device_id, operator, image_ref, "
    "image_sha256, image_size, image_format, width, height, access_time, capture_time, "
    "saved_at, received_at")


@contextlib.contextmanager
def bare_engine(settings: Settings, backend: str) -> Iterator[Engine]:
    """An empty engine database (no migration run yet)."""
    with contextlib.ExitStack() as stack:
        url = (f"sqlite:///{settings.home / 'engine.db'}" if backend == "sqlite"
               else stack.enter_context(postgres_schema_url()))
        settings.home.mkdir(parents=True, exist_ok=True)
        engine = create_station_engine(url)
        stack.callback(engine.dispose)
        yield engine


def _capture_values(uid: str, station: str, session: str) -> str:
    return (f"'{uid}', {station}, {session}, 'white', 'back', 'cam', 'nurse', 'ab/ab.jpg', "
            f"'{'a' * 64}', 10, 'jpg', 8, 8, {T}, {T}, {T}, {T}")


def _populate_0001(engine: Engine) -> None:
    with engine.begin() as c:
        c.execute(text(f"INSERT INTO stations (id, name, station_ref, token_hash, enrolled_at) "
                       f"VALUES (1, 'Clinic', 'c1', '{'0' * 64}', {T})"))
        c.execute(text(f"INSERT INTO patients (id, station_id, pseudonym, created_at) "
                       f"VALUES (1, 1, 'P-1', {T})"))
        c.execute(text(f"INSERT INTO exam_sessions (id, station_id, ref, patient_id, operator, "
                       f"opened_at) VALUES (1, 1, 'visit-1', 1, 'nurse', {T})"))
        c.execute(text(f"INSERT INTO captures (id, {CAPTURE_COLUMNS}) VALUES "
                       f"(7, {_capture_values('u-7', '1', '1')})"))
        c.execute(text(f"INSERT INTO predictions (capture_id, model_version, "
                       f"class_probabilities, group_probabilities, decision, created_at) "
                       f"VALUES (7, 'm1', '{{}}', '{{}}', 'benign', {T})"))
        c.execute(text(f"INSERT INTO reviews (capture_id, origin, reviewer, action, code, "
                       f"created_at) VALUES (7, 'engine', 'drlee', 'correct', 'mel', {T})"))


def _rows(engine: Engine) -> list[tuple]:
    with engine.connect() as c:
        return [tuple(r) for r in c.execute(text(
            "SELECT c.id, c.uid, c.source, c.station_id, c.session_id, c.provider_id, "
            "p.decision, r.code FROM captures c JOIN predictions p ON p.capture_id = c.id "
            "JOIN reviews r ON r.capture_id = c.id ORDER BY c.id"))]


@pytest.mark.parametrize("backend", BACKENDS)
def test_upgrade_keeps_station_cases_and_guards_sources(settings: Settings,
                                                        backend: str) -> None:
    with bare_engine(settings, backend) as engine:
        config = alembic_config(engine)
        command.upgrade(config, "0001")
        _populate_0001(engine)
        command.upgrade(config, "head")
        assert current_revision(engine) == "0007"
        assert _rows(engine) == [(7, "u-7", "station", 1, 1, None, "benign", "mel")]
        if backend == "sqlite":
            with engine.connect() as c:
                assert c.execute(text("PRAGMA foreign_key_check")).all() == []
        with engine.begin() as c:
            c.execute(text(f"INSERT INTO providers (id, name, contact, requests_per_minute, "
                           f"requests_per_day, disabled, created_by, created_at) VALUES "
                           f"(1, 'Acme', '', 5, 50, false, 'root', {T})"))
        provider_case = (f"INSERT INTO captures ({CAPTURE_COLUMNS}, source, provider_id, "
                         f"end_user_ref) VALUES ({_capture_values('u-8', 'NULL', 'NULL')}, "
                         "'provider', 1, {user})")
        for broken in (provider_case.format(user="NULL"),  # no end-user id
                       provider_case.replace("'u-8', NULL", "'u-8', 1").format(user="'u1'")):
            with pytest.raises(IntegrityError, match=r"ck_captures_source|CHECK constraint"), \
                    engine.begin() as c:
                c.execute(text(broken))
        with engine.begin() as c:
            c.execute(text(provider_case.format(user="'end-user-1'")))
        with pytest.raises(RuntimeError, match="provider captures exist; 0001 cannot hold"):
            command.downgrade(config, "0001")
        with engine.begin() as c:
            c.execute(text("DELETE FROM captures WHERE source = 'provider'"))
        command.downgrade(config, "0001")
        assert current_revision(engine) == "0001"
        with engine.connect() as c:
            assert c.execute(text("SELECT id, uid, station_id FROM captures")).all() == [
                (7, "u-7", 1)]
