"""Account management, the half of ``AuthService`` that changes accounts.

What administrators do to accounts (create, list, disable, enable, unlock, reset a password)
and what every operator may do to their own (change the password).

Every change writes one audit row in its transaction, naming the actor (``actor_id``) and the
account (``entity_id`` and ``detail["username"]``); never a password. Rules:

* an administrator cannot disable their own account, nor the last active administrator (the
  active administrators' rows are locked while this is checked, so two administrators
  disabling each other at once cannot leave none);
* a reset sets a temporary password the operator must replace at their next login
  (``must_change_password``; until then :meth:`AuthService.require` refuses everything but
  the change), clears any lockout and ends the account's open sessions in this process;
* unlocking clears a lockout and the failure count at once;
* a change of one's own password needs the current one and follows the same policy as a new
  account's (``auth.min_password_length``, not the username, not common).
"""

from __future__ import annotations

import logging
import weakref
from typing import TYPE_CHECKING

from argon2 import PasswordHasher
from sqlalchemy import select
from sqlalchemy.orm import Session as DbSession

from skinstation.auth import accounts
from skinstation.auth.accounts import OperatorAccount
from skinstation.auth.errors import (
    LastAdminError,
    OwnAccountError,
    PasswordPolicyError,
    SessionExpiredError,
    WrongCurrentPasswordError,
)
from skinstation.auth.permissions import Permission, can_manage_operators
from skinstation.auth.sessions import Session
from skinstation.core.passwords import verify_password
from skinstation.core.timeutil import Clock
from skinstation.settings import AuthSettings
from skinstation.storage.audit import AuditAction
from skinstation.storage.database import Database
from skinstation.storage.models import Operator, Role

log = logging.getLogger(__name__)


class AccountManagement:
    """The account-management half of :class:`~skinstation.auth.service.AuthService`.

    A mixin: ``AuthService`` supplies the attributes and the session checks declared here.
    """

    database: Database
    policy: AuthSettings
    clock: Clock
    hasher: PasswordHasher
    _live: dict[int, weakref.WeakSet[Session]]

    if TYPE_CHECKING:  # supplied by AuthService
        def check(self, session: Session) -> Session:
            """See :meth:`AuthService.check`."""

        def require(self, session: Session, permission: Permission) -> Session:
            """See :meth:`AuthService.require`."""

        def _audit(self, db: DbSession, actor_id: int | None, action: AuditAction,
                   operator_id: int | None, detail: dict[str, object] | None = None) -> None:
            """Add an audit row about an operator account."""

    # -- administrators -------------------------------------------------------------------

    def create_operator(
        self, admin: Session, username: str, display_name: str, role: Role | str, password: str
    ) -> OperatorAccount:
        """Create an account (administrators only).

        Raises:
            OperatorExistsError: If the username is taken.
            PasswordPolicyError: If the password breaks the policy.
        """
        self.require(admin, can_manage_operators)
        with self.database.transaction() as db:
            operator = self._add_operator(
                db, admin.operator_id, username, display_name, Role(role), password
            )
            return OperatorAccount.of(operator, self.clock())

    def list_operators(self, admin: Session) -> list[OperatorAccount]:
        """Return every account, by username (administrators only)."""
        self.require(admin, can_manage_operators)
        with self.database.transaction() as db:
            now = self.clock()
            rows = db.scalars(select(Operator).order_by(Operator.username))
            return [OperatorAccount.of(row, now) for row in rows]

    def disable_operator(self, admin: Session, username: str) -> OperatorAccount:
        """Disable an account and end its open sessions (administrators only).

        Raises:
            UnknownOperatorError: If there is no such account.
            OwnAccountError: For the administrator's own account.
            LastAdminError: For the last active administrator.
        """
        self.require(admin, can_manage_operators)
        with self.database.transaction() as db:
            active_admins = accounts.active_admin_ids(db)  # locks them until the commit
            operator = accounts.find_operator(db, username)
            if operator.id == admin.operator_id:
                raise OwnAccountError("disable")
            if operator.id in active_admins and len(active_admins) <= 1:
                raise LastAdminError()
            if admin.operator_id not in active_admins:  # disabled since its session check
                admin.end("account disabled")
                raise SessionExpiredError(admin.expiry_message())
            if not operator.disabled:
                operator.disabled = True
                self._audit(db, admin.operator_id, AuditAction.OPERATOR_DISABLED, operator.id,
                            {"username": operator.username})
            account = OperatorAccount.of(operator, self.clock())
        self._end_sessions(operator.id, "account disabled")
        log.info("operator %r disabled by %r", account.username, admin.username)
        return account

    def enable_operator(self, admin: Session, username: str) -> OperatorAccount:
        """Re-enable an account and clear any lockout (administrators only).

        Raises:
            UnknownOperatorError: If there is no such account.
        """
        self.require(admin, can_manage_operators)
        with self.database.transaction() as db:
            operator = accounts.find_operator(db, username)
            operator.disabled = False
            operator.locked_until = None
            operator.failed_login_count = 0
            self._audit(db, admin.operator_id, AuditAction.OPERATOR_ENABLED, operator.id,
                        {"username": operator.username})
            return OperatorAccount.of(operator, self.clock())

    def unlock_operator(self, admin: Session, username: str) -> OperatorAccount:
        """Lift a lockout at once and reset the failure count (administrators only).

        An account that is neither locked nor has failed logins is returned unchanged, and
        nothing is audited.

        Raises:
            UnknownOperatorError: If there is no such account.
        """
        self.require(admin, can_manage_operators)
        with self.database.transaction() as db:
            now = self.clock()
            operator = accounts.find_operator(db, username)
            was_locked = accounts.is_locked(operator, now)
            if was_locked or operator.failed_login_count:
                locked_until = operator.locked_until if was_locked else None
                detail: dict[str, object] = {
                    "username": operator.username,
                    "locked_until": None if locked_until is None else locked_until.isoformat(),
                    "failed_logins": operator.failed_login_count,
                }
                operator.locked_until = None
                operator.failed_login_count = 0
                self._audit(db, admin.operator_id, AuditAction.OPERATOR_UNLOCKED, operator.id,
                            detail)
                log.info("operator %r unlocked by %r", operator.username, admin.username)
            return OperatorAccount.of(operator, now)

    def reset_password(self, admin: Session, username: str, new_password: str) -> None:
        """Give another operator a temporary password they must change at their next login.

        Administrators only. Clears any lockout and ends the account's open sessions here.

        Raises:
            UnknownOperatorError: If there is no such account.
            OwnAccountError: For the administrator's own account (use
                :meth:`change_password`).
            PasswordPolicyError: If the temporary password breaks the policy.
        """
        self.require(admin, can_manage_operators)
        with self.database.transaction() as db:
            operator = accounts.find_operator(db, username)
            if operator.id == admin.operator_id:
                raise OwnAccountError("reset")
            accounts.set_password(operator, new_password, self.hasher, self.policy, self.clock())
            operator.locked_until = None
            operator.failed_login_count = 0
            operator.must_change_password = True
            self._audit(db, admin.operator_id, AuditAction.PASSWORD_RESET, operator.id,
                        {"username": operator.username, "must_change_password": True})
        self._end_sessions(operator.id, "password reset")
        log.info("password of operator %r reset by %r", operator.username, admin.username)

    # -- everyone -------------------------------------------------------------------------

    def change_password(self, session: Session, old_password: str, new_password: str) -> None:
        """Change one's own password; the current one must be given.

        Also the way out of a reset: it clears ``must_change_password``.

        Raises:
            WrongCurrentPasswordError: If ``old_password`` is wrong (an
                ``InvalidCredentialsError``).
            PasswordPolicyError: If the new password breaks the policy or equals the old one.
        """
        self.check(session)
        with self.database.transaction() as db:
            operator = accounts.find_operator(db, session.username)
            if verify_password(self.hasher, operator.password_hash, old_password):
                if old_password == new_password:
                    raise PasswordPolicyError("The new password must differ from the current one.")
                accounts.set_password(
                    operator, new_password, self.hasher, self.policy, self.clock()
                )
                operator.must_change_password = False
                self._audit(db, operator.id, AuditAction.PASSWORD_CHANGED, operator.id)
                session.must_change_password = False
                log.info("operator %r changed their password", operator.username)
                return
            self._audit(db, operator.id, AuditAction.PASSWORD_CHANGE_FAILED, operator.id,
                        {"reason": "wrong_current_password"})
        raise WrongCurrentPasswordError()

    # -- helpers --------------------------------------------------------------------------

    def _add_operator(
        self,
        db: DbSession,
        actor_id: int | None,
        username: str,
        display_name: str,
        role: Role,
        password: str,
    ) -> Operator:
        operator = accounts.new_operator(
            db, username, display_name, role, password, self.hasher, self.policy, self.clock()
        )
        self._audit(
            db,
            actor_id if actor_id is not None else operator.id,
            AuditAction.OPERATOR_CREATED,
            operator.id,
            {"username": operator.username, "role": role.value},
        )
        log.info("operator %r created with role %s", operator.username, role.value)
        return operator

    def _end_sessions(self, operator_id: int, reason: str) -> None:
        for session in list(self._live.get(operator_id, ())):
            session.end(reason)
