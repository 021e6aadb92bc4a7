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

from skinstation.core.crypto import STATION_KEYS, configure_data_keys
from skinstation.core.files import secure_tree
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

    The station home and everything in it (database, images, keys, models, caches) are made
    owner-only first: 0700 folders and 0600 files, a looser one fixed with a logged warning.
    The engine's home, when it lies inside the station's, is left to the engine.

    Args:
        settings: Supplies ``database_url``, ``images_dir`` and ``station_id``.
        run_recovery: Run :func:`~skinstation.storage.recovery.recover` (default on).
        orphan_grace: Image files without a row younger than this are left alone (a writer
            in another process may be about to commit them).

    Returns:
        The open database. With ``settings.retention_years`` set, captures past the retention
        period have been erased (at most once a day, see :mod:`skinstation.storage.erasure`).

    Raises:
        UnsafePermissionsError: A file or folder in the home is open to others and cannot be
            made owner-only (another user owns it).
    """
    secure_tree(settings.home, skip=[settings.engine.home or settings.home / "engine"])
    engine = create_station_engine(settings.database_url)
    upgrade_to_head(engine)
    sessions = sessionmaker(engine, expire_on_commit=False)
    install_append_only_guard(sessions)
    configure_data_keys(STATION_KEYS, enabled=settings.encrypt_at_rest, home=settings.home)
    images = ImageStore(settings.images_dir, keys=STATION_KEYS)
    report = recover(settings, engine=engine, grace=orphan_grace) if run_recovery else None
    database = Database(settings, engine, sessions, images, report)
    if settings.retention_years:
        _retention_at_start_up(database)
    return database


def _retention_at_start_up(database: Database) -> None:
    """Apply the retention period if it did not run today (a failure never stops start-up)."""
    from skinstation.core.timeutil import utc_now
    from skinstation.storage.erasure import run_retention_if_due  # it imports this module

    try:
        run_retention_if_due(database, utc_now())
    except Exception:
        log.exception("retention at start-up failed; it is tried again by the sync thread")
