"""Opening the engine database and its file storage.

The engine keeps rows in its own database (SQLite in ``<engine home>/engine.db`` by default,
PostgreSQL for scale-out) and bytes in a storage folder: content-addressed capture images and
model files. Several API processes may share both; nothing lives in process memory.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, sessionmaker

from skinstation.core.images import ImageStore
from skinstation.core.sqlbase import create_database_engine
from skinstation.settings import Settings

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
VERSION_TABLE = "alembic_version_engine"
_MIGRATION_LOCK = threading.Lock()


@dataclass(frozen=True)
class EnginePaths:
    """Where the engine keeps its files.

    Attributes:
        home: Engine folder (signing key, job logs, caches).
        database_url: SQLAlchemy URL of the engine database.
        storage: Folder of capture images and model files (shared storage when scaled out).
    """

    home: Path
    database_url: str
    storage: Path

    @classmethod
    def of(cls, settings: Settings) -> EnginePaths:
        """Resolve the engine paths from the settings (defaults under ``settings.home``)."""
        home = settings.engine.home or settings.home / "engine"
        url = settings.engine.database_url or f"sqlite:///{home / 'engine.db'}"
        configured = settings.engine.storage_dir
        storage = Path(configured).expanduser() if configured else home / "storage"
        return cls(Path(home), url, storage)

    @property
    def images(self) -> Path:
        """Capture images, ``<sha[:2]>/<sha>.<ext>``."""
        return self.storage / "images"

    @property
    def models(self) -> Path:
        """Model files, ``<version>.safetensors``."""
        return self.storage / "models"

    @property
    def signing_key(self) -> Path:
        """The Ed25519 private key (owner-only)."""
        return self.home / "keys" / "signing_key.pem"

    @property
    def jobs(self) -> Path:
        """One folder per training job: log, caches (resumed on retry), candidate, reports."""
        return self.home / "jobs"


@dataclass(frozen=True)
class EngineDatabase:
    """The open engine database with its image store.

    Attributes:
        settings: The settings it was opened with.
        paths: Resolved engine paths.
        engine: SQLAlchemy engine.
        sessions: Session factory (objects stay readable after commit).
        images: Content-addressed store of capture images.
    """

    settings: Settings
    paths: EnginePaths
    engine: Engine
    sessions: sessionmaker[Session]
    images: ImageStore

    @contextmanager
    def transaction(self) -> Iterator[Session]:
        """Yield a session inside one transaction: committed on success, rolled back on error."""
        with self.sessions.begin() as session:
            yield session

    def dispose(self) -> None:
        """Close pooled connections."""
        self.engine.dispose()


def alembic_config(engine: Engine) -> Config:
    """Alembic configuration migrating ``engine`` with the engine's scripts."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.attributes["engine"] = engine
    return config


def head_revision() -> str:
    """Newest engine migration shipped with this code."""
    head = ScriptDirectory(str(MIGRATIONS_DIR)).get_current_head()
    if head is None:
        raise RuntimeError(f"no migration found in {MIGRATIONS_DIR}")
    return head


def current_revision(engine: Engine) -> str | None:
    """Revision the engine database is at (``None`` if empty)."""
    with engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"version_table": VERSION_TABLE})
        return context.get_current_revision()


def open_engine_database(settings: Settings, *, migrate: bool = True) -> EngineDatabase:
    """Open the engine database, creating folders and migrating to head.

    Args:
        settings: Supplies ``settings.engine`` (home, database URL, storage folder).
        migrate: Apply pending migrations (API workers started by ``serve`` skip it: the
            parent process migrated once before starting them).

    Returns:
        The open database.
    """
    paths = EnginePaths.of(settings)
    paths.home.mkdir(parents=True, exist_ok=True)
    paths.storage.mkdir(parents=True, exist_ok=True)
    engine = create_database_engine(paths.database_url)
    if migrate:
        with _MIGRATION_LOCK:
            command.upgrade(alembic_config(engine), "head")
    sessions = sessionmaker(engine, expire_on_commit=False)
    return EngineDatabase(settings, paths, engine, sessions, ImageStore(paths.images))
