"""Tables of the accounts domain (all of the engine's tables: :mod:`skinstation.engine.tables`)."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import (
    CheckConstraint,
    ForeignKey,
    String,
)
from sqlalchemy.orm import Mapped, mapped_column

from skinstation.core.sqlbase import LoginAccountColumns, in_values
from skinstation.engine.base import Base


class AccountRole(StrEnum):
    """What an engine account may do."""

    ADMIN = "admin"
    DERMATOLOGIST = "dermatologist"


class Account(LoginAccountColumns, Base):
    """A person who uses the engine: an administrator or a dermatologist."""

    __tablename__ = "accounts"
    __table_args__ = (CheckConstraint(in_values("role", AccountRole), name="role"),)

    created_at: Mapped[datetime]


class ApiSession(Base):
    """A login of an account: the bearer token's sha256, with its expiry."""

    __tablename__ = "api_sessions"

    id: Mapped[int] = mapped_column(primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"), index=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime]
    expires_at: Mapped[datetime]
    ended_at: Mapped[datetime | None]
