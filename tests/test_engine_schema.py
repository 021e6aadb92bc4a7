"""The engine's Alembic migrations build exactly its models; append-only tables hold."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect, text
from sqlalchemy.exc import DBAPIError

from skinstation.engine.database import (
    VERSION_TABLE,
    EngineDatabase,
    current_revision,
    head_revision,
    open_engine_database,
)
from skinstation.engine.tables import Base
from skinstation.settings import Settings
from tests.test_storage_helpers import BACKENDS, postgres_schema_url

ENGINE_TABLES = {
    "accounts", "api_sessions", "audit_log", "captures", "deployments", "enrollment_codes",
    "erasures", "erased_captures", "training_cases",
    "exam_sessions", "model_versions", "patients", "predictions", "reviews", "signing_keys",
    "stations", "training_jobs", "providers", "provider_keys", "provider_usage",
    "provider_rate_windows", VERSION_TABLE,
}


@contextlib.contextmanager
def engine_db(settings: Settings, backend: str) -> Iterator[EngineDatabase]:
    """A migrated engine database on SQLite (in the tmp home) or a private PG schema."""
    with contextlib.ExitStack() as stack:
        url = "" if backend == "sqlite" else stack.enter_context(postgres_schema_url())
        db = open_engine_database(settings.replace(engine={"database_url": url}))
        stack.callback(db.dispose)
        yield db


def _diff(db: EngineDatabase) -> list[Any]:
    with db.engine.connect() as connection:
        context = MigrationContext.configure(
            connection, opts={"compare_type": True, "version_table": VERSION_TABLE})
        return compare_metadata(context, Base.metadata)


@pytest.mark.parametrize("backend", BACKENDS)
def test_migration_builds_exactly_the_engine_models(settings: Settings, backend: str) -> None:
    with engine_db(settings, backend) as db:
        assert current_revision(db.engine) == head_revision() == "0007"
        assert set(inspect(db.engine).get_table_names()) == ENGINE_TABLES
        assert _diff(db) == []
        again = open_engine_database(db.settings)  # upgrading at head is a no-op
        assert _diff(again) == []
        again.dispose()


@pytest.mark.parametrize("backend", BACKENDS)
def test_audit_log_refuses_update_and_delete(settings: Settings, backend: str) -> None:
    with engine_db(settings, backend) as db:
        with db.engine.begin() as connection:
            connection.execute(text(
                "INSERT INTO audit_log (occurred_at, actor, action, detail) "
                "VALUES ('2025-01-01', 'test', 'x', '{}')"))
        for statement in ("UPDATE audit_log SET actor = 'someone else'", "DELETE FROM audit_log"):
            with pytest.raises(DBAPIError, match="audit_log is append-only"), \
                    db.engine.begin() as connection:
                connection.execute(text(statement))
        with db.engine.connect() as connection:
            assert connection.execute(text("SELECT actor FROM audit_log")).scalars().all() == [
                "test"]
