"""The Alembic migrations build exactly the models' schema; SQLite is configured for safety."""

from __future__ import annotations

import contextlib
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Column, Integer, MetaData, Table, inspect, text
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError

from skinstation.inference import decision, taxonomy
from skinstation.settings import Settings
from skinstation.storage import (
    INDETERMINATE,
    SKIN_CANCER,
    create_station_engine,
    current_revision,
    head_revision,
    init_database,
)
from skinstation.storage.models import Base
from tests.test_storage_helpers import BACKENDS, open_backend, postgres_schema_url

EXPECTED_TABLES = {
    "alembic_version",
    "audit_log",
    "captures",
    "engine_reviews",
    "erasures",
    "labels",
    "lesions",
    "operators",
    "outbox",
    "patients",
    "predictions",
    "review_details",
    "sync_state",
    "visits",
}


def _schema_diff(engine: Engine, metadata: MetaData = Base.metadata) -> list[Any]:
    with engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        return compare_metadata(context, metadata)


def _describe(engine: Engine) -> dict[str, Any]:
    """Everything SQLAlchemy can reflect about a schema, in comparable form."""
    inspector = inspect(engine)
    described: dict[str, Any] = {}
    for table in sorted(set(inspector.get_table_names()) - {"alembic_version"}):
        described[table] = {
            "columns": [
                (c["name"], str(c["type"]), c["nullable"]) for c in inspector.get_columns(table)
            ],
            "pk": inspector.get_pk_constraint(table)["constrained_columns"],
            "fks": sorted(
                (tuple(fk["constrained_columns"]), fk["referred_table"], fk["name"])
                for fk in inspector.get_foreign_keys(table)
            ),
            "indexes": sorted(
                (
                    i["name"],
                    tuple(i["column_names"]),
                    bool(i["unique"]),
                    {k: str(v) for k, v in i.get("dialect_options", {}).items()}.__repr__(),
                )
                for i in inspector.get_indexes(table)
            ),
            "uniques": sorted(
                (u["name"], tuple(u["column_names"]))
                for u in inspector.get_unique_constraints(table)
            ),
            "checks": sorted(
                (c["name"], " ".join(c["sqltext"].split()))
                for c in inspector.get_check_constraints(table)
            ),
        }
    return described


def test_storage_decision_codes_match_inference() -> None:
    assert INDETERMINATE == decision.INDETERMINATE == "indeterminate"
    assert SKIN_CANCER == taxonomy.SKIN_CANCER == "skin_cancer"


@pytest.mark.parametrize("backend", BACKENDS)
def test_migration_creates_exactly_the_models_schema(settings: Settings, backend: str) -> None:
    with open_backend(settings, backend) as database:
        assert current_revision(database.engine) == head_revision() == "0011"
        assert set(inspect(database.engine).get_table_names()) == EXPECTED_TABLES
        assert _schema_diff(database.engine) == []


def test_schema_comparison_detects_a_missing_column(settings: Settings) -> None:
    database = init_database(settings)
    changed = MetaData()
    for table in Base.metadata.sorted_tables:
        table.to_metadata(changed)
    Table("captures", changed, Column("exposure_ms", Integer), extend_existing=True)
    diff = _schema_diff(database.engine, changed)
    assert [(d[0], d[3].name) for d in diff] == [("add_column", "exposure_ms")]


@pytest.mark.parametrize("backend", BACKENDS)
def test_migrated_schema_equals_create_all_including_checks(
    settings: Settings, backend: str
) -> None:
    with contextlib.ExitStack() as stack:
        migrated = stack.enter_context(open_backend(settings, backend)).engine
        if backend == "sqlite":
            reference = create_station_engine(f"sqlite:///{settings.home / 'reference.db'}")
        else:
            reference = create_station_engine(stack.enter_context(postgres_schema_url()))
        stack.callback(reference.dispose)
        Base.metadata.create_all(reference)
        described = _describe(migrated)
        assert described == _describe(reference)
    assert [name for name, _ in described["operators"]["checks"]] == ["ck_operators_role"]
    assert [name for name, _ in described["captures"]["checks"]] == [
        "ck_captures_multispectral_pair",
        "ck_captures_positive_size",
    ]
    indexes = [i[:3] for i in described["labels"]["indexes"]]
    assert ("uq_labels_one_original", ("capture_id",), True) in indexes
    if backend == "sqlite":
        assert described["operators"]["checks"] == [
            ("ck_operators_role", "role IN ('staff', 'dermatologist', 'admin')")
        ]


@pytest.mark.parametrize("backend", BACKENDS)
def test_upgrade_is_idempotent_and_keeps_data(settings: Settings, backend: str) -> None:
    with open_backend(settings, backend) as database:
        settings = database.settings
        with database.engine.begin() as connection:
            connection.execute(
                text(
                    "INSERT INTO operators (username, display_name, role, password_hash, "
                    "disabled, failed_login_count, password_changed_at, created_at) VALUES "
                    "('ann', 'Ann', 'staff', 'h', false, 0, '2025-01-01', '2025-01-01')"
                )
            )
        before = _schema_diff(database.engine)
        again = init_database(settings)
        third = init_database(settings)
        try:
            assert before == _schema_diff(again.engine) == _schema_diff(third.engine) == []
            assert current_revision(third.engine) == "0011"
            with third.engine.connect() as connection:
                assert connection.scalar(text("SELECT count(*) FROM alembic_version")) == 1
                names = connection.scalars(text("SELECT username FROM operators")).all()
            assert names == ["ann"]
        finally:
            again.dispose()
            third.dispose()


def test_sqlite_connections_use_wal_foreign_keys_and_busy_timeout(settings: Settings) -> None:
    database = init_database(settings)
    with database.engine.connect() as connection:
        assert connection.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert connection.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
        assert connection.exec_driver_sql("PRAGMA busy_timeout").scalar() == 15000
        assert connection.exec_driver_sql("PRAGMA synchronous").scalar() == 2  # FULL
    assert settings.database_url == f"sqlite:///{settings.home / 'station.db'}"
    assert (settings.home / "station.db").is_file()
    assert (settings.home / "station.db-wal").exists()


def test_sqlite_foreign_keys_are_enforced(settings: Settings) -> None:
    database = init_database(settings)
    with (
        pytest.raises(IntegrityError, match="FOREIGN KEY constraint failed"),
        database.engine.begin() as connection,
    ):
        connection.execute(
            text(
                "INSERT INTO visits (patient_id, operator_id, station_id, opened_at) "
                "VALUES (999, 999, 's', '2025-01-01')"
            )
        )


def test_database_url_comes_from_settings(tmp_path: Any, settings: Settings) -> None:
    custom = settings.replace(database_url=f"sqlite:///{tmp_path / 'elsewhere' / 'x.db'}")
    database = init_database(custom)
    assert database.engine.url.database == str(tmp_path / "elsewhere" / "x.db")
    assert (tmp_path / "elsewhere" / "x.db").is_file()
    assert not (settings.home / "station.db").exists()
