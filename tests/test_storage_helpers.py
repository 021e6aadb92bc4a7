"""Helpers shared by the storage and auth tests (no tests here).

They live in a ``test_storage*`` module because the shared ``conftest.py`` belongs to the
whole suite. PostgreSQL databases get a private schema that is dropped afterwards.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import create_engine
from sqlalchemy.engine import make_url

from skinstation.settings import Settings
from skinstation.storage import Database, Operator, init_database

PG_URL = os.environ.get("SKINSTATION_TEST_PG_URL", "")
BACKENDS = [
    "sqlite",
    pytest.param(
        "postgresql",
        marks=[
            pytest.mark.postgres,
            pytest.mark.skipif(not PG_URL, reason="SKINSTATION_TEST_PG_URL not set"),
        ],
    ),
]


class FakeClock:
    """A settable clock returning aware UTC datetimes."""

    def __init__(self, start: datetime = datetime(2025, 3, 14, 10, 0, tzinfo=UTC)) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> datetime:
        self.now += timedelta(**delta)
        return self.now


@contextmanager
def postgres_schema_url() -> Iterator[str]:
    """Yield a URL of ``SKINSTATION_TEST_PG_URL`` confined to a fresh schema (dropped after)."""
    schema = f"skinstation_test_{uuid.uuid4().hex[:12]}"
    admin = create_engine(PG_URL)
    with admin.begin() as connection:
        connection.exec_driver_sql(f"CREATE SCHEMA {schema}")
    url = make_url(PG_URL).update_query_dict({"options": f"-csearch_path={schema}"})
    try:
        yield url.render_as_string(hide_password=False)
    finally:
        with admin.begin() as connection:
            connection.exec_driver_sql(f"DROP SCHEMA {schema} CASCADE")
        admin.dispose()


@contextmanager
def open_backend(settings: Settings, backend: str, **kwargs: object) -> Iterator[Database]:
    """Open a migrated station database on SQLite (in ``settings.home``) or PostgreSQL."""
    if backend == "sqlite":
        database = init_database(settings, **kwargs)  # type: ignore[arg-type]
        try:
            yield database
        finally:
            database.dispose()
        return
    with postgres_schema_url() as url:
        database = init_database(settings.replace(database_url=url), **kwargs)  # type: ignore[arg-type]
        try:
            yield database
        finally:
            database.dispose()


def add_operator(database: Database, username: str, role: str, *, disabled: bool = False) -> int:
    """Insert an operator row directly (storage tests do not need a real password hash)."""
    now = datetime(2025, 1, 1, tzinfo=UTC)
    with database.transaction() as session:
        operator = Operator(
            username=username,
            display_name=username.title(),
            role=role,
            password_hash="not-a-real-hash",
            disabled=disabled,
            failed_login_count=0,
            password_changed_at=now,
            created_at=now,
        )
        session.add(operator)
        session.flush()
        return operator.id
