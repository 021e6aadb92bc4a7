"""Alembic migrations of a database kept by this code (the station's and the engine's).

Each database ships its own scripts folder and version table; both are migrated through one
:class:`MigrationScripts` and one process-wide lock, because Alembic keeps its running
context in module globals (across processes the database's own locking serialises them).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, sessionmaker

_MIGRATION_LOCK = threading.Lock()


class MigrationScripts:
    """A folder of Alembic scripts and the version table they record their revision in.

    Args:
        directory: The ``migrations`` folder (with ``env.py`` and ``versions/``).
        version_table: Alembic's version table (``None``: Alembic's ``alembic_version``).
    """

    def __init__(self, directory: Path, version_table: str | None = None) -> None:
        self.directory = directory
        self.version_table = version_table

    def config(self, engine: Engine) -> Config:
        """An Alembic configuration that migrates ``engine`` with these scripts."""
        config = Config()
        config.set_main_option("script_location", str(self.directory))
        config.attributes["engine"] = engine
        return config

    def upgrade(self, engine: Engine, revision: str = "head") -> None:
        """Apply every pending migration up to ``revision`` (a no-op when already there)."""
        with _MIGRATION_LOCK:
            command.upgrade(self.config(engine), revision)

    def head(self) -> str:
        """The newest revision shipped with this code.

        Raises:
            RuntimeError: If the folder holds no migration.
        """
        head = ScriptDirectory(str(self.directory)).get_current_head()
        if head is None:
            raise RuntimeError(f"no migration found in {self.directory}")
        return head

    def current(self, engine: Engine) -> str | None:
        """The revision the database is at (``None`` for an empty database)."""
        opts = {"version_table": self.version_table} if self.version_table else {}
        with engine.connect() as connection:
            return MigrationContext.configure(connection, opts=opts).get_current_revision()


class SessionScope:
    """``transaction()`` and ``dispose()`` over a class's ``engine`` and ``sessions``."""

    engine: Engine
    sessions: sessionmaker[Session]

    @contextmanager
    def transaction(self) -> Iterator[Session]:
        """Yield a session inside one transaction: committed on success, rolled back on error."""
        with self.sessions.begin() as session:
            yield session

    def dispose(self) -> None:
        """Close every pooled connection (call before deleting or moving the database)."""
        self.engine.dispose()
