"""``AuthService``: first-run admin, login with lockout, sessions (and, mixed in, accounts).

Messages tell the operator what happened without telling a stranger which usernames exist:
a wrong password and an unknown username both give "Wrong username or password." (and cost
the same argon2 verification). A locked account says until when; a disabled account says so
only once the right password was given. Lockout itself necessarily shows that an account
exists; it also stops password guessing, since passwords are not checked while locked. A
username (known or not) that failed ``auth.throttle_failures`` times within
``auth.throttle_minutes`` must wait before it is tried again (:mod:`skinstation.core.throttle`).
A wrong password says how many more wrong ones lock the account (``auth.max_failed_logins``,
``auth.lockout_minutes``); an unknown username gets the same count, imitated from its recent
failures in the throttle, so the two still look alike until a lockout. Every login, failure,
lockout and account change writes an audit row in its transaction. Account management (what
administrators do to accounts, changing one's own password) is in
:mod:`skinstation.auth.management`.
"""

from __future__ import annotations

import logging
import secrets
import weakref
from datetime import datetime, timedelta, tzinfo

from argon2 import PasswordHasher
from sqlalchemy import func, select
from sqlalchemy.orm import Session as DbSession

from skinstation.auth import accounts
from skinstation.auth.accounts import OperatorAccount, normalise_username
from skinstation.auth.errors import (
    AccountDisabledError,
    AccountLockedError,
    AuthError,
    InvalidCredentialsError,
    LoginThrottledError,
    OperatorExistsError,
    PasswordChangeRequiredError,
    PermissionDeniedError,
    SessionExpiredError,
)
from skinstation.auth.management import AccountManagement
from skinstation.auth.permissions import Permission
from skinstation.auth.sessions import Session
from skinstation.core.passwords import default_hasher, verify_password
from skinstation.core.throttle import SlidingWindowThrottle, ThrottledError, whole_seconds
from skinstation.core.timeutil import Clock, utc_now
from skinstation.settings import AuthSettings
from skinstation.storage.audit import AuditAction, record_audit
from skinstation.storage.database import Database
from skinstation.storage.models import Operator, Role

log = logging.getLogger(__name__)


class AuthService(AccountManagement):
    """Operator accounts and logins of one station.

    Args:
        database: The open station database.
        settings: Login policy (``database.settings.auth`` if None).
        clock: Source of "now" (aware datetimes); tests inject a fake instead of sleeping.
        hasher: argon2 hasher (argon2-cffi's memory-hard default if None).
        display_timezone: Zone for "locked until HH:MM" (the system's local zone if None).
    """

    def __init__(
        self,
        database: Database,
        *,
        settings: AuthSettings | None = None,
        clock: Clock = utc_now,
        hasher: PasswordHasher | None = None,
        display_timezone: tzinfo | None = None,
    ) -> None:
        self.database = database
        self.policy = settings if settings is not None else database.settings.auth
        self.clock = clock
        self.hasher = hasher if hasher is not None else default_hasher()
        self.display_timezone = display_timezone
        self._dummy_hash: str | None = None
        self._live: dict[int, weakref.WeakSet[Session]] = {}
        self._throttle = SlidingWindowThrottle(
            self.policy.throttle_failures, self.policy.throttle_minutes * 60.0,
            clock=lambda: self.clock().timestamp())

    # -- first run -------------------------------------------------------------------------

    def needs_first_admin(self) -> bool:
        """True while no administrator account exists (the first-run screen must be shown)."""
        with self.database.transaction() as db:
            return accounts.admin_count(db) == 0

    def create_first_admin(
        self, username: str, display_name: str, password: str
    ) -> OperatorAccount:
        """Create the first administrator from explicit input (there is no default password).

        Raises:
            OperatorExistsError: If an administrator already exists.
            PasswordPolicyError: If the password breaks the policy.
        """
        with self.database.transaction() as db:
            if db.get_bind().dialect.name == "postgresql":
                db.execute(select(func.pg_advisory_xact_lock(0x5C1A_AD31)))
            if accounts.admin_count(db) > 0:
                raise OperatorExistsError(
                    "An administrator already exists; first-run setup cannot run again."
                )
            operator = self._add_operator(db, None, username, display_name, Role.ADMIN, password)
            return OperatorAccount.of(operator)

    # -- login, sessions -------------------------------------------------------------------

    def login(self, username: str, password: str) -> Session:
        """Check a username and password and open a session.

        Raises:
            InvalidCredentialsError: Wrong password or unknown username (same message).
            AccountLockedError: Too many failures; says until when.
            AccountDisabledError: Right password, but the account is disabled.
            LoginThrottledError: Too many failed logins of this username lately; says how
                long to wait (the password is not checked).
        """
        name = normalise_username(username)
        try:
            attempt = self._throttle.begin(name, timeout=30.0)  # (logins from other threads)
        except ThrottledError as throttled:
            with self.database.transaction() as db:
                self._audit(db, None, AuditAction.LOGIN_FAILED, None,
                            {"username": name, "reason": "throttled"})
            raise LoginThrottledError(whole_seconds(throttled.wait_seconds)) from None
        try:
            operator, failure, guessed, now = self._check_password(name, password)
        except BaseException:
            self._throttle.cancel(attempt)
            raise
        if guessed:  # a wrong password or an unknown username: the attempt stays counted
            self._throttle.fail(attempt)
        else:
            self._throttle.cancel(attempt, forget=failure is None)
        if failure is not None:
            log.info("login refused for %r: %s", name, type(failure).__name__)
            raise failure
        assert operator is not None
        log.info("operator %r logged in", name)
        session = Session(
            operator.id,
            operator.username,
            operator.display_name,
            Role(operator.role),
            timedelta(minutes=self.policy.session_timeout_minutes),
            self.clock,
            now,
            now,
            must_change_password=bool(operator.must_change_password),
        )
        self._live.setdefault(operator.id, weakref.WeakSet()).add(session)
        return session

    def _check_password(
        self, name: str, password: str
    ) -> tuple[Operator | None, AuthError | None, bool, datetime]:
        """Check a login in one transaction.

        Returns:
            The operator, the failure (``None``: success), whether the password was guessed
            wrong or the username unknown, and when.
        """
        failure: AuthError | None = None
        guessed = False
        with self.database.transaction() as db:
            now = self.clock()
            # FOR UPDATE: concurrent failures on PostgreSQL must not lose a count (SQLite's
            # BEGIN IMMEDIATE already serialises writers).
            stmt = select(Operator).where(Operator.username == name).with_for_update()
            operator = db.scalar(stmt)
            if operator is None:
                guessed = True
                self._verify_dummy(password)
                self._audit(db, None, AuditAction.LOGIN_FAILED, None,
                            {"username": name, "reason": "unknown_username"})
                failure = self._wrong(self._imitated_count(name))
            elif operator.locked_until is not None and operator.locked_until > now:
                self._audit(
                    db, operator.id, AuditAction.LOGIN_FAILED, operator.id, {"reason": "locked"}
                )
                failure = self._locked_error(operator.locked_until)
            elif not verify_password(self.hasher, operator.password_hash, password):
                guessed = True
                failure = self._count_failure(db, operator, now)
            elif operator.disabled:
                self._audit(
                    db, operator.id, AuditAction.LOGIN_FAILED, operator.id, {"reason": "disabled"}
                )
                failure = AccountDisabledError()
            else:
                operator.failed_login_count = 0
                operator.locked_until = None
                if self.hasher.check_needs_rehash(operator.password_hash):
                    operator.password_hash = self.hasher.hash(password)
                self._audit(db, operator.id, AuditAction.LOGIN_SUCCEEDED, operator.id)
        return operator, failure, guessed, now

    def _count_failure(self, db: DbSession, operator: Operator, now: datetime) -> AuthError:
        operator.failed_login_count += 1
        self._audit(db, operator.id, AuditAction.LOGIN_FAILED, operator.id,
                    {"reason": "wrong_password", "failed_logins": operator.failed_login_count})
        if operator.failed_login_count < self.policy.max_failed_logins:
            return self._wrong(operator.failed_login_count)
        operator.failed_login_count = 0
        operator.locked_until = now + timedelta(minutes=self.policy.lockout_minutes)
        self._audit(db, operator.id, AuditAction.LOGIN_LOCKED_OUT, operator.id,
                    {"locked_until": operator.locked_until.isoformat()})
        log.warning("operator %r locked out until %s", operator.username, operator.locked_until)
        return self._locked_error(operator.locked_until)

    def _wrong(self, failed_logins: int) -> InvalidCredentialsError:
        """The wrong-password error, saying how many more failures lock the account."""
        left = self.policy.max_failed_logins - failed_logins
        return InvalidCredentialsError(attempts_left=left if left > 0 else None,
                                       lockout_minutes=self.policy.lockout_minutes)

    def _imitated_count(self, name: str) -> int:
        """An account's failure count, imitated for an unknown username (it never locks)."""
        return self._throttle.failures(name) % self.policy.max_failed_logins + 1

    def _locked_error(self, locked_until: datetime) -> AccountLockedError:
        shown = locked_until.astimezone(self.display_timezone)
        if shown.second or shown.microsecond:  # round up: never show a time still locked
            shown = shown.replace(second=0, microsecond=0) + timedelta(minutes=1)
        return AccountLockedError(locked_until, shown.strftime("%H:%M"))

    def _verify_dummy(self, password: str) -> None:
        """Spend the time of a real verification so unknown usernames are not faster."""
        if self._dummy_hash is None:
            self._dummy_hash = self.hasher.hash(secrets.token_urlsafe(24))
        verify_password(self.hasher, self._dummy_hash, password)

    def logout(self, session: Session) -> None:
        """End a session (audited)."""
        if session.ended_reason is None:
            session.end("logged out")
            self._record(session.operator_id, AuditAction.LOGOUT, session.operator_id)

    def check(self, session: Session) -> Session:
        """Confirm a session may still be used: not expired, account still enabled.

        Raises:
            SessionExpiredError: With the reason (timeout, logout, account disabled).
        """
        if not session.expired:
            with self.database.transaction() as db:
                operator = db.get(Operator, session.operator_id)
                if operator is None or operator.disabled:
                    session.end("account disabled")
        if session.expired:
            if session.ended_reason is None:
                session.end("timed out")
                self._record(session.operator_id, AuditAction.SESSION_EXPIRED, session.operator_id)
            raise SessionExpiredError(session.expiry_message())
        return session

    def require(self, session: Session, permission: Permission) -> Session:
        """Check the session, then that its role has ``permission``.

        Raises:
            SessionExpiredError: If the session can no longer be used.
            PasswordChangeRequiredError: If the password was reset and not yet changed.
            PermissionDeniedError: If the role lacks the permission.
        """
        self.check(session)
        if session.must_change_password:
            raise PasswordChangeRequiredError()
        if not permission(session.role):
            action = permission.__name__.removeprefix("can_").replace("_", " ")
            raise PermissionDeniedError(f"A {session.role} account may not {action}.")
        return session

    # -- helpers ---------------------------------------------------------------------------

    def _audit(
        self,
        db: DbSession,
        actor_id: int | None,
        action: AuditAction,
        operator_id: int | None,
        detail: dict[str, object] | None = None,
    ) -> None:
        record_audit(
            db,
            at=self.clock(),
            station_id=self.database.settings.station_id,
            actor_id=actor_id,
            action=action,
            entity_type="operator",
            entity_id=operator_id,
            detail=dict(detail or {}),
        )

    def _record(self, actor_id: int | None, action: AuditAction, operator_id: int | None) -> None:
        with self.database.transaction() as db:
            self._audit(db, actor_id, action, operator_id)
