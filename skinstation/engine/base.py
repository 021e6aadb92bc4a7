"""SQLAlchemy models of the engine's own database (created by its Alembic migrations).

Every datetime is UTC. Enumerated columns are strings guarded by CHECK constraints so the same
schema runs on SQLite and PostgreSQL. ``audit_log``, ``reviews`` and ``deployments`` are
append-only (database triggers refuse UPDATE and DELETE). Secrets are never stored: tokens and
enrollment codes are kept as sha256 digests, passwords as argon2id hashes.
"""

from __future__ import annotations

from sqlalchemy.orm import DeclarativeBase

from skinstation.core.sqlbase import annotation_types, new_metadata


class Base(DeclarativeBase):
    """Declarative base of the engine database."""

    metadata = new_metadata()
    type_annotation_map = annotation_types()


APPEND_ONLY_TABLES = ("audit_log", "reviews", "deployments")
