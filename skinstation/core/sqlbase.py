"""Shared SQLAlchemy building blocks of the station and engine databases.

Both databases use the same constraint naming convention (so Alembic migrations name every
constraint the same way on SQLite and PostgreSQL), the same UTC datetime and JSON mappings,
and the same Alembic environment; each has its own declarative base and migration scripts.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from sqlalchemy import JSON, Index, MetaData, String, create_engine, event
from sqlalchemy.engine import Connection, Engine, make_url
from sqlalchemy.orm import Mapped, Session, declared_attr, mapped_column

from skinstation.core.files import create_private_file, private_dir, private_file
from skinstation.core.timeutil import UtcDateTime

if TYPE_CHECKING:
    import sqlite3

    from sqlalchemy.pool import ConnectionPoolEntry

log = logging.getLogger(__name__)

SQLITE_BUSY_TIMEOUT_SECONDS = 15.0

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class LoginAccountColumns:
    """Columns of an account a person logs in with (station operator, engine account).

    A declarative mixin: each table that uses it gets its own copies of these columns, first
    in the table (``sort_order``), as the migrations created them. The password is an argon2id
    hash; ``failed_login_count`` and ``locked_until`` drive lockout.
    """

    id: Mapped[int] = mapped_column(primary_key=True, sort_order=-1)
    username: Mapped[str] = mapped_column(String(64), unique=True, sort_order=-1)
    display_name: Mapped[str] = mapped_column(String(200), sort_order=-1)
    role: Mapped[str] = mapped_column(String(20), sort_order=-1)
    password_hash: Mapped[str] = mapped_column(String(255), sort_order=-1)
    disabled: Mapped[bool] = mapped_column(default=False, sort_order=-1)
    failed_login_count: Mapped[int] = mapped_column(default=0, sort_order=-1)
    locked_until: Mapped[datetime | None] = mapped_column(sort_order=-1)


class PredictionColumns:
    """Columns of one model output for one capture (station and engine ``predictions``)."""

    model_version: Mapped[str] = mapped_column(String(64))
    class_probabilities: Mapped[dict[str, Any]]
    group_probabilities: Mapped[dict[str, Any]]
    decision: Mapped[str] = mapped_column(String(32))
    referral: Mapped[bool | None]
    created_at: Mapped[datetime]


class AuditLogColumns:
    """Columns and indexes of an append-only, hash-chained audit log (station and engine).

    A declarative mixin: who acted is the table's own column(s) (the station names an
    operator and itself, the engine an account name), placed between ``occurred_at`` and
    ``action`` by ``sort_order``, as the migrations created them. ``prev_hash`` and
    ``row_hash`` link each row to the one before (:mod:`skinstation.core.auditchain`).
    """

    __tablename__ = "audit_log"

    @declared_attr.directive
    def __table_args__(cls) -> tuple[Index, ...]:
        """The entity and row-hash indexes (new objects for each table)."""
        return (Index("ix_audit_log_entity", "entity_type", "entity_id"),
                Index("ix_audit_log_row_hash", "row_hash", unique=True))

    id: Mapped[int] = mapped_column(primary_key=True, sort_order=-1)
    occurred_at: Mapped[datetime] = mapped_column(index=True, sort_order=-1)
    action: Mapped[str] = mapped_column(String(64), index=True, sort_order=1)
    entity_type: Mapped[str | None] = mapped_column(String(32), sort_order=1)
    entity_id: Mapped[str | None] = mapped_column(String(64), sort_order=1)
    detail: Mapped[dict[str, Any]] = mapped_column(sort_order=1)
    prev_hash: Mapped[str | None] = mapped_column(String(64), sort_order=1)
    row_hash: Mapped[str | None] = mapped_column(String(64), sort_order=1)


def new_metadata() -> MetaData:
    """Metadata with the shared naming convention."""
    return MetaData(naming_convention=NAMING_CONVENTION)


def annotation_types() -> dict[Any, Any]:
    """``datetime`` → aware UTC column, ``dict[str, Any]`` → JSON."""
    return {datetime: UtcDateTime(), dict[str, Any]: JSON()}


def in_values(column: str, values: type[StrEnum]) -> str:
    """SQL for a CHECK constraint: ``column`` holds one of the enum's values."""
    return f"{column} IN ({', '.join(repr(v.value) for v in values)})"


def run_alembic_environment(target_metadata: MetaData, version_table: str | None = None) -> None:
    """The body of a migrations ``env.py``: offline SQL or online migration in one transaction.

    The engine comes from ``config.attributes["engine"]`` (set by the code that migrates), or
    from ``-x url=...`` / ``sqlalchemy.url`` on the ``alembic`` command line.
    """
    from alembic import context

    config = context.config
    options: dict[str, Any] = {"target_metadata": target_metadata, "render_as_batch": True}
    if version_table:
        options["version_table"] = version_table
    if context.is_offline_mode():
        context.configure(url=config.get_main_option("sqlalchemy.url"), literal_binds=True,
                          **options)
        with context.begin_transaction():
            context.run_migrations()
        return
    engine: Engine | None = config.attributes.get("engine")
    if engine is None:
        url = (context.get_x_argument(as_dictionary=True).get("url")
               or config.get_main_option("sqlalchemy.url"))
        if not url:
            raise RuntimeError("no engine in config.attributes and no sqlalchemy.url / -x url=")
        engine = create_engine(url)
    with engine.connect() as connection:
        context.configure(connection=connection, compare_type=True, **options)
        with context.begin_transaction():
            context.run_migrations()


def create_database_engine(url: str) -> Engine:
    """Create an engine for ``url``, configuring SQLite for durability and concurrency.

    Args:
        url: SQLAlchemy URL, e.g. ``sqlite:////var/lib/skinstation/station.db`` or
            ``postgresql+psycopg://user@host/db``.

    Returns:
        The engine. A SQLite database file is owner-only (0600 in a 0700 folder): created so
        before SQLite opens it, or fixed with a warning; SQLite gives its ``-wal``/``-shm``
        files the database file's mode, and loose ones left from before are fixed too.

    Raises:
        UnsafePermissionsError: The SQLite file or its folder is open to others and cannot be
            fixed (another user owns it).
    """
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite":
        return create_engine(parsed, pool_pre_ping=True)
    if parsed.database and parsed.database != ":memory:" and not parsed.database.startswith(
            "file:"):
        secure_sqlite_files(Path(parsed.database).expanduser())
    engine = create_engine(parsed, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_SECONDS})
    event.listen(engine, "connect", _configure_sqlite_connection)
    event.listen(engine, "begin", _begin_immediate)
    return engine


def secure_sqlite_files(path: Path) -> None:
    """Make a SQLite database file, its journals and its folder owner-only (create if missing).

    Raises:
        UnsafePermissionsError: One of them is open to others and cannot be fixed.
    """
    private_dir(path.parent)
    for suffix in ("", "-wal", "-shm", "-journal"):
        private_file(path.with_name(path.name + suffix))
    create_private_file(path)


def _configure_sqlite_connection(dbapi_connection: sqlite3.Connection,
                                 _record: ConnectionPoolEntry) -> None:
    # Take transaction control away from the sqlite3 module (it would defer BEGIN and commit
    # around DDL); the "begin" listener issues BEGIN IMMEDIATE instead.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    try:
        mode = cursor.execute("PRAGMA journal_mode=WAL").fetchone()[0]
        if str(mode).lower() != "wal":
            log.warning("SQLite refused WAL mode (journal_mode=%s)", mode)
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA synchronous=FULL")
        cursor.execute(f"PRAGMA busy_timeout={int(SQLITE_BUSY_TIMEOUT_SECONDS * 1000)}")
    finally:
        cursor.close()


def _begin_immediate(connection: Connection) -> None:
    connection.exec_driver_sql("BEGIN IMMEDIATE")


def append_only_trigger_sql(dialect: str, tables: Sequence[str], function: str) -> list[str]:
    """The statements that make ``tables`` refuse UPDATE, DELETE (and TRUNCATE) in the database.

    Migration scripts of both databases execute these. They are part of migration history:
    never change the SQL returned here; a new rule needs a new function and a new migration.

    Args:
        dialect: ``"sqlite"`` or ``"postgresql"`` (anything else: no statements).
        tables: The append-only tables.
        function: PostgreSQL only: the name of the trigger function to create.

    Returns:
        The SQL statements, in order.
    """
    statements: list[str] = []
    if dialect == "sqlite":
        for table in tables:
            for event in ("UPDATE", "DELETE"):
                statements.append(
                    f"CREATE TRIGGER trg_{table}_no_{event.lower()} BEFORE {event} ON {table} "
                    f"BEGIN SELECT RAISE(ABORT, '{table} is append-only'); END"
                )
    elif dialect == "postgresql":
        statements.append(
            f"CREATE FUNCTION {function}() RETURNS trigger LANGUAGE plpgsql AS "
            "$$ BEGIN RAISE EXCEPTION '% is append-only', TG_TABLE_NAME; END $$"
        )
        for table in tables:
            statements.append(
                f"CREATE TRIGGER trg_{table}_append_only BEFORE UPDATE OR DELETE ON {table} "
                f"FOR EACH ROW EXECUTE FUNCTION {function}()"
            )
            statements.append(
                f"CREATE TRIGGER trg_{table}_no_truncate BEFORE TRUNCATE ON {table} "
                f"FOR EACH STATEMENT EXECUTE FUNCTION {function}()"
            )
    return statements


@contextmanager
def deletes_allowed(session: Session, table: str) -> Iterator[None]:
    """Let the current transaction of ``session`` delete rows of the append-only ``table``.

    For erasure only (a patient's labels or reviews must go). The trigger that refuses DELETE
    is lifted inside the transaction and put back, exactly as :func:`append_only_trigger_sql`
    made it, before the block returns; nothing outside the transaction ever sees it lifted
    (SQLite: one writer at a time, the DDL is transactional; PostgreSQL: ``ALTER TABLE``
    holds a lock that keeps other writers of the table waiting until commit). If the block
    raises, the caller's rollback puts the trigger back. Never used on an audit log.

    Args:
        session: A session inside the transaction that deletes.
        table: The append-only table (``labels``, the engine's ``reviews``).

    Raises:
        ValueError: ``table`` is not a plain table name, or is an audit log.
    """
    if not re.fullmatch(r"[a-z_]+", table) or table == "audit_log":
        raise ValueError(f"deletes cannot be allowed on table {table!r}")
    with append_only_lifted(session.connection(), table, "delete"):
        yield


@contextmanager
def append_only_lifted(connection: Connection, table: str,
                       event: Literal["update", "delete"]) -> Iterator[None]:
    """Lift the append-only trigger that refuses ``event`` on ``table`` inside a transaction.

    The trigger is dropped (SQLite) or disabled (PostgreSQL, where one trigger refuses UPDATE
    and DELETE) inside the caller's transaction and put back, exactly as
    :func:`append_only_trigger_sql` made it, before the block returns; if the block raises,
    the caller's rollback puts it back. Used by erasure (DELETE: :func:`deletes_allowed`), key
    rotation and the audit-chain migration (UPDATE).

    Args:
        connection: A connection inside the caller's transaction.
        table: The append-only table.
        event: The statement kind the block needs.
    """
    dialect = connection.dialect.name
    if dialect == "sqlite":
        connection.exec_driver_sql(f"DROP TRIGGER trg_{table}_no_{event}")
    elif dialect == "postgresql":
        connection.exec_driver_sql(f"ALTER TABLE {table} DISABLE TRIGGER trg_{table}_append_only")
    yield
    if dialect == "sqlite":
        for statement in append_only_trigger_sql("sqlite", (table,), ""):
            if f"trg_{table}_no_{event} " in statement:
                connection.exec_driver_sql(statement)
    elif dialect == "postgresql":
        connection.exec_driver_sql(f"ALTER TABLE {table} ENABLE TRIGGER trg_{table}_append_only")
