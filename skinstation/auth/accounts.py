"""Operator account rows: usernames, the public view of an account, creation, passwords."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from argon2 import PasswordHasher
from sqlalchemy import false, func, select
from sqlalchemy.orm import Session as DbSession

from skinstation.auth.errors import OperatorExistsError, UnknownOperatorError
from skinstation.core.passwords import check_password_policy
from skinstation.core.usernames import USERNAME as USERNAME
from skinstation.core.usernames import normalise_username as normalise_username
from skinstation.settings import AuthSettings
from skinstation.storage.models import Operator, Role

MAX_DISPLAY_NAME = 200


@dataclass(frozen=True)
class OperatorAccount:
    """An operator as the UI sees it (never the password hash)."""

    id: int
    username: str
    display_name: str
    role: Role
    disabled: bool
    locked_until: datetime | None
    created_at: datetime
    must_change_password: bool = False
    locked: bool = False

    @classmethod
    def of(cls, operator: Operator, now: datetime | None = None) -> OperatorAccount:
        """Build from the database row (``locked`` says whether it is locked at ``now``)."""
        return cls(
            operator.id,
            operator.username,
            operator.display_name,
            Role(operator.role),
            operator.disabled,
            operator.locked_until,
            operator.created_at,
            bool(operator.must_change_password),
            now is not None and is_locked(operator, now),
        )


def is_locked(operator: Operator, now: datetime) -> bool:
    """Whether the account refuses logins at ``now`` after too many wrong passwords."""
    return operator.locked_until is not None and operator.locked_until > now


def find_operator(db: DbSession, username: str) -> Operator:
    """Return the operator with this username.

    Raises:
        UnknownOperatorError: If there is none.
    """
    name = normalise_username(username)
    operator = db.scalar(select(Operator).where(Operator.username == name))
    if operator is None:
        raise UnknownOperatorError(f"There is no operator {name!r}.")
    return operator


def admin_count(db: DbSession) -> int:
    """Return how many administrator accounts exist (disabled ones included)."""
    stmt = select(func.count()).select_from(Operator).where(Operator.role == Role.ADMIN.value)
    return db.scalar(stmt) or 0


def active_admin_ids(db: DbSession) -> list[int]:
    """Ids of the administrators not disabled, their rows locked for this transaction."""
    stmt = (select(Operator.id)
            .where(Operator.role == Role.ADMIN.value, Operator.disabled == false())
            .order_by(Operator.id).with_for_update())
    return list(db.scalars(stmt))


def new_operator(
    db: DbSession,
    username: str,
    display_name: str,
    role: Role,
    password: str,
    hasher: PasswordHasher,
    policy: AuthSettings,
    now: datetime,
) -> Operator:
    """Validate and add a new account row (flushed, so it has an id).

    Raises:
        ValueError: If the username or display name is malformed.
        OperatorExistsError: If the username is taken.
        PasswordPolicyError: If the password breaks the policy.
    """
    name = normalise_username(username)
    if not USERNAME.fullmatch(name):
        raise ValueError(
            "Username must be 2-64 characters: lower-case letters, digits, '.', '_' or '-'."
        )
    display = display_name.strip()
    if not display or len(display) > MAX_DISPLAY_NAME:
        raise ValueError(f"Display name must be 1-{MAX_DISPLAY_NAME} characters.")
    if db.scalar(select(Operator.id).where(Operator.username == name)) is not None:
        raise OperatorExistsError(f"The username {name!r} is already taken.")
    check_password_policy(password, username=name, policy=policy)
    operator = Operator(
        username=name,
        display_name=display,
        role=Role(role).value,
        password_hash=hasher.hash(password),
        disabled=False,
        failed_login_count=0,
        password_changed_at=now,
        created_at=now,
    )
    db.add(operator)
    db.flush()
    return operator


def set_password(
    operator: Operator, password: str, hasher: PasswordHasher, policy: AuthSettings, now: datetime
) -> None:
    """Check a new password against the policy and store its hash on ``operator``.

    Raises:
        PasswordPolicyError: If the password breaks the policy.
    """
    check_password_policy(password, username=operator.username, policy=policy)
    operator.password_hash = hasher.hash(password)
    operator.password_changed_at = now
