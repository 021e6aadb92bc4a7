"""Opening the engine database and its file storage.

The engine keeps rows in its own database (SQLite in ``<engine home>/engine.db`` by default,
PostgreSQL for scale-out) and bytes in a storage folder: content-addressed capture images and
model files. Several API processes may share both; nothing lives in process memory.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, sessionmaker

from skinstation.core.crypto import ENGINE_KEYS, configure_data_keys
from skinstation.core.files import private_dir, secure_tree
from skinstation.core.images import ImageStore
from skinstation.core.migrations import MigrationScripts, SessionScope
from skinstation.core.sqlbase import create_database_engine
from skinstation.settings import Settings

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
VERSION_TABLE = "alembic_version_engine"


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
class EngineDatabase(SessionScope):
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



MIGRATIONS = MigrationScripts(MIGRATIONS_DIR, VERSION_TABLE)
alembic_config = MIGRATIONS.config
head_revision = MIGRATIONS.head
current_revision = MIGRATIONS.current


def open_engine_database(settings: Settings, *, migrate: bool = True) -> EngineDatabase:
    """Open the engine database, creating folders and migrating to head.

    The engine home and its storage are made owner-only first (0700 folders, 0600 files: the
    database, the signing key, job files, model files; a looser one is fixed with a logged
    warning). In the image store only the folders are checked: image files are always
    written owner-only, and there may be millions of them.

    Args:
        settings: Supplies ``settings.engine`` (home, database URL, storage folder).
        migrate: Apply pending migrations (API workers started by ``serve`` skip it: the
            parent process migrated once before starting them).

    Returns:
        The open database.

    Raises:
        UnsafePermissionsError: A file or folder is open to others and cannot be made
            owner-only (another user owns it).
    """
    paths = EnginePaths.of(settings)
    for folder in (paths.home, paths.storage, paths.images, paths.models):
        private_dir(folder)
    secure_tree(paths.home, folders_only=[paths.images])
    if not paths.storage.absolute().is_relative_to(paths.home.absolute()):
        secure_tree(paths.storage, folders_only=[paths.images])
    engine = create_database_engine(paths.database_url)
    if migrate:
        MIGRATIONS.upgrade(engine)
    sessions = sessionmaker(engine, expire_on_commit=False)
    configure_data_keys(ENGINE_KEYS, enabled=settings.engine.encrypt_at_rest,
                        home=settings.home)
    return EngineDatabase(settings, paths, engine, sessions,
                          ImageStore(paths.images, keys=ENGINE_KEYS))
