"""Tables of the audit domain (all of the engine's tables: :mod:`skinstation.engine.tables`)."""

from __future__ import annotations

from sqlalchemy import String
from sqlalchemy.orm import Mapped, mapped_column

from skinstation.core.sqlbase import AuditLogColumns
from skinstation.engine.base import Base


class AuditEvent(AuditLogColumns, Base):
    """Who saw or changed what on the engine, and when; append-only."""

    actor: Mapped[str] = mapped_column(String(128), index=True)
