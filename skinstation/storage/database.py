"""Opening the station database: engine setup, migrations to head, start-up recovery.

SQLite (the default) runs in WAL mode with foreign keys on, ``synchronous=FULL`` and a busy
timeout; every transaction starts with ``BEGIN IMMEDIATE`` so two writers wait for each other
instead of failing on a read-to-write lock upgrade. PostgreSQL URLs work unchanged.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, sessionmaker

from skinstation.core.images import ImageStore
from skinstation.core.migrations import MigrationScripts, SessionScope
from skinstation.core.sqlbase import create_database_engine as create_station_engine
from skinstation.settings import Settings
from skinstation.storage.audit import install_append_only_guard
from skinstation.storage.recovery import DEFAULT_ORPHAN_GRACE, RecoveryReport, recover

log = logging.getLogger(__name__)

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"


@dataclass(frozen=True)
class Database(SessionScope):
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



MIGRATIONS = MigrationScripts(MIGRATIONS_DIR)
alembic_config = MIGRATIONS.config
head_revision = MIGRATIONS.head
current_revision = MIGRATIONS.current


def upgrade_to_head(engine: Engine) -> None:
    """Apply every pending station migration (a no-op when the schema is already at head)."""
    MIGRATIONS.upgrade(engine)


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
