"""Engine accounts (administrators, dermatologists): argon2id passwords, lockout, API logins.

Passwords are hashed and checked with :mod:`skinstation.core.passwords` (the station's own
policy and hasher). A login returns a bearer token valid for ``engine.session_hours``; only its
sha256 is stored, so any API process can check it and a database leak reveals no token.
"""

from __future__ import annotations

import functools
import getpass
from dataclasses import dataclass
from datetime import datetime, timedelta

from argon2 import PasswordHasher
from sqlalchemy import select
from sqlalchemy.orm import Session

from skinstation.core.passwords import (
    PasswordPolicyError,
    check_password_policy,
    default_hasher,
    verify_password,
)
from skinstation.core.timeutil import utc_now
from skinstation.core.usernames import USERNAME, normalise_username
from skinstation.engine.accounts.models import Account, AccountRole, ApiSession
from skinstation.engine.accounts.schemas import LoginResponse
from skinstation.engine.audit import service as audit
from skinstation.engine.database import EngineDatabase
from skinstation.engine.errors import (
    ConflictError,
    ForbiddenError,
    InvalidError,
    LockedError,
    UnauthorizedError,
)
from skinstation.engine.tokens import SESSION_TOKEN_PREFIX, digest, new_token

_HASHER = default_hasher()


@functools.cache
def _dummy_hash() -> str:
    """A hash to verify against for unknown users, so they take as long as known ones."""
    return _HASHER.hash("not-a-real-password-0")


@dataclass(frozen=True)
class AccountPrincipal:
    """A logged-in person as the services see them."""

    account_id: int
    username: str
    display_name: str
    role: AccountRole

    @property
    def actor(self) -> str:
        """Audit actor string."""
        return f"account:{self.username}"

    def require(self, *roles: AccountRole) -> AccountPrincipal:
        """Return self if the role is one of ``roles``.

        Raises:
            ForbiddenError: Otherwise.
        """
        if self.role not in roles:
            allowed = " or ".join(r.value for r in roles)
            raise ForbiddenError(f"this needs the {allowed} role; {self.username!r} is {self.role}")
        return self


def cli_actor() -> str:
    """Audit actor of an administrator running the engine CLI on the server."""
    return f"cli:{getpass.getuser()}"


def create_account(
    db: EngineDatabase,
    username: str,
    password: str,
    role: AccountRole,
    *,
    display_name: str = "",
    actor: str,
    hasher: PasswordHasher = _HASHER,
) -> AccountPrincipal:
    """Create an administrator or dermatologist account.

    Raises:
        InvalidError: Bad username or a password that breaks the policy.
        ConflictError: The username is taken.
    """
    name = normalise_username(username)
    if not USERNAME.fullmatch(name):
        raise InvalidError(
            f"username {name!r} must be 2-64 lower-case letters, digits, '.', '_' or '-'"
        )
    try:
        check_password_policy(password, username=name, policy=db.settings.auth)
    except PasswordPolicyError as error:
        raise InvalidError(str(error)) from None
    with db.transaction() as session:
        if session.scalar(select(Account.id).where(Account.username == name)) is not None:
            raise ConflictError(f"account {name!r} already exists")
        account = Account(
            username=name,
            display_name=(display_name or name)[:200],
            role=AccountRole(role).value,
            password_hash=hasher.hash(password),
            disabled=False,
            failed_login_count=0,
            created_at=utc_now(),
        )
        session.add(account)
        session.flush()
        audit.record(session, actor, "account.created", "account", account.id,
                     {"username": name, "role": account.role})
        return _principal(account)


def login(db: EngineDatabase, username: str, password: str) -> LoginResponse:
    """Check a password and open an API login.

    The argon2 check runs between two short transactions, never inside one: a transaction
    held for it would keep a database connection (and on SQLite the write lock) from every
    other request, ``/health`` included, for as long as logins keep coming. What the first
    transaction read is checked again in the second (a lock, a password change or a
    disabled account in between wins).

    Returns:
        The bearer token (shown once), when it expires, and the account's username and role.

    Raises:
        UnauthorizedError: Unknown user, wrong password or disabled account (same message).
        LockedError: Too many failed attempts; says until when.
    """
    name = normalise_username(username)
    with db.transaction() as session:
        found = session.execute(select(Account.id, Account.password_hash, Account.locked_until)
                                .where(Account.username == name)).first()
    if found is not None and found.locked_until is not None and found.locked_until > utc_now():
        raise _locked(db, found.locked_until)
    checked = found.password_hash if found is not None else _dummy_hash()
    matches = verify_password(_HASHER, checked, password)  # unknown users take as long
    with db.transaction() as session:
        account = None if found is None else session.get(Account, found.id, with_for_update=True)
        now = utc_now()
        if account is None:
            audit.record(session, f"anonymous:{name}"[:128], "login.failed", None, None,
                         {"reason": "unknown user"})
            failure: UnauthorizedError | LockedError = UnauthorizedError(
                "wrong username or password")
        elif account.locked_until is not None and account.locked_until > now:
            failure = _locked(db, account.locked_until)  # locked while this one was checked
        elif not matches or account.disabled or account.password_hash != checked:
            account.failed_login_count += 1
            if account.failed_login_count >= db.settings.auth.max_failed_logins:
                account.locked_until = now + timedelta(minutes=db.settings.auth.lockout_minutes)
                account.failed_login_count = 0
            audit.record(session, f"account:{name}", "login.failed", "account", account.id,
                         {"reason": "disabled" if account.disabled else "wrong password"})
            failure = UnauthorizedError("wrong username or password")
        else:
            account.failed_login_count, account.locked_until = 0, None
            token = new_token(SESSION_TOKEN_PREFIX)
            expires = now + timedelta(hours=db.settings.engine.session_hours)
            session.add(ApiSession(account_id=account.id, token_hash=digest(token),
                                   created_at=now, expires_at=expires))
            audit.record(session, f"account:{name}", "login.succeeded", "account", account.id)
            return LoginResponse(token=token, expires_at=expires, username=account.username,
                                 role=AccountRole(account.role).value)
    raise failure


def _locked(db: EngineDatabase, until: datetime) -> LockedError:
    return LockedError(f"account locked after {db.settings.auth.max_failed_logins} failed "
                       f"logins until {until.isoformat(timespec='seconds')}")


def authenticate(db: EngineDatabase, token: str) -> AccountPrincipal:
    """Return who a login token belongs to.

    Raises:
        UnauthorizedError: Unknown, expired or ended token, or a disabled account.
    """
    if not token.startswith(SESSION_TOKEN_PREFIX):
        raise UnauthorizedError("invalid or expired login token")
    with db.transaction() as session:
        row = session.execute(
            select(ApiSession, Account)
            .join(Account, Account.id == ApiSession.account_id)
            .where(ApiSession.token_hash == digest(token))
        ).first()
        if row is None:
            raise UnauthorizedError("invalid or expired login token")
        login_row, account = row
        if login_row.ended_at is not None or login_row.expires_at <= utc_now() or account.disabled:
            raise UnauthorizedError("invalid or expired login token")
        return _principal(account)


def logout(db: EngineDatabase, token: str) -> None:
    """End a login (a no-op for an unknown token)."""
    with db.transaction() as session:
        login_row = session.scalar(select(ApiSession).where(ApiSession.token_hash == digest(token)))
        if login_row is not None and login_row.ended_at is None:
            login_row.ended_at = utc_now()
            account = session.get(Account, login_row.account_id)
            name = account.username if account is not None else "?"
            audit.record(session, f"account:{name}", "logout", "account", login_row.account_id)


def list_accounts(session: Session) -> list[AccountPrincipal]:
    """Every account (never the password hash)."""
    return [_principal(a) for a in session.scalars(select(Account).order_by(Account.id))]


def _principal(account: Account) -> AccountPrincipal:
    return AccountPrincipal(account.id, account.username, account.display_name,
                            AccountRole(account.role))
