"""Opening the station database: engine setup, migrations to head, start-up recovery.

SQLite (the default) runs in WAL mode with foreign keys on, ``synchronous=FULL`` and a busy
timeout; every transaction starts with ``BEGIN IMMEDIATE`` so two writers wait for each other
instead of failing on a read-to-write lock upgrade. PostgreSQL URLs work unchanged.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, sessionmaker

from skinstation.core.images import ImageStore
from skinstation.core.sqlbase import create_database_engine as create_station_engine
from skinstation.settings import Settings
from skinstation.storage.audit import install_append_only_guard
from skinstation.storage.recovery import DEFAULT_ORPHAN_GRACE, RecoveryReport, recover

log = logging.getLogger(__name__)

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
_MIGRATION_LOCK = threading.Lock()


@dataclass(frozen=True)
class Database:
    """An open station database and its image store.

    Attributes:
        settings: The settings it was opened with (``station_id``, ``images_dir``...).
        engine: The SQLAlchemy engine.
        sessions: Session factory; objects stay readable after commit.
        images: The content-addressed image store under ``settings.images_dir``.
        recovery: What start-up recovery found and cleaned (``None`` if it was skipped).
    """

    settings: Settings
    engine: Engine
    sessions: sessionmaker[Session]
    images: ImageStore
    recovery: RecoveryReport | None = None

    @contextmanager
    def transaction(self) -> Iterator[Session]:
        """Yield a session inside one transaction: committed on success, rolled back on error."""
        with self.sessions.begin() as session:
            yield session

    def dispose(self) -> None:
        """Close every pooled connection (call before deleting or moving the database)."""
        self.engine.dispose()


def alembic_config(engine: Engine) -> Config:
    """Return an Alembic configuration that migrates ``engine`` with the bundled scripts."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.attributes["engine"] = engine
    return config


def upgrade_to_head(engine: Engine) -> None:
    """Apply every pending migration (a no-op when the schema is already at head).

    Alembic keeps its running context in module globals, so migrations in one process are
    serialised; across processes the database's own locking serialises them.
    """
    with _MIGRATION_LOCK:
        command.upgrade(alembic_config(engine), "head")


def head_revision() -> str:
    """Return the newest migration revision shipped with this code."""
    head = ScriptDirectory(str(MIGRATIONS_DIR)).get_current_head()
    if head is None:
        raise RuntimeError(f"no migration found in {MIGRATIONS_DIR}")
    return head


def current_revision(engine: Engine) -> str | None:
    """Return the revision the database is at (``None`` for an empty database)."""
    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def init_database(
    settings: Settings,
    *,
    run_recovery: bool = True,
    orphan_grace: timedelta = DEFAULT_ORPHAN_GRACE,
) -> Database:
    """Open the station database: create folders, migrate to head, recover from crashes.

    Args:
        settings: Supplies ``database_url``, ``images_dir`` and ``station_id``.
        run_recovery: Run :func:`~skinstation.storage.recovery.recover` (default on).
        orphan_grace: Image files without a row younger than this are left alone (a writer
            in another process may be about to commit them).

    Returns:
        The open database.
    """
    settings.home.mkdir(parents=True, exist_ok=True)
    engine = create_station_engine(settings.database_url)
    upgrade_to_head(engine)
    sessions = sessionmaker(engine, expire_on_commit=False)
    install_append_only_guard(sessions)
    images = ImageStore(settings.images_dir)
    report = recover(settings, engine=engine, grace=orphan_grace) if run_recovery else None
    return Database(settings, engine, sessions, images, report)
