"""Errors of operator authentication and access; their messages are shown to the operator."""

from __future__ import annotations

from datetime import datetime

from skinstation.core.passwords import PasswordPolicyError as PasswordPolicyError


class AuthError(Exception):
    """Base class of every authentication or access error (``str()`` is for the operator)."""


class InvalidCredentialsError(AuthError):
    """Wrong password, or a username that does not exist (deliberately indistinguishable).

    Attributes:
        attempts_left: Further wrong passwords after which the account is locked (``None``
            when not said), from ``auth.max_failed_logins``.
        lockout_minutes: How long that lock lasts (``auth.lockout_minutes``).
    """

    def __init__(self, message: str = "Wrong username or password.", *,
                 attempts_left: int | None = None, lockout_minutes: float | None = None) -> None:
        super().__init__(message)
        self.attempts_left = attempts_left
        self.lockout_minutes = lockout_minutes


class WrongCurrentPasswordError(InvalidCredentialsError):
    """A password change gave a wrong current password."""

    def __init__(self) -> None:
        super().__init__("The current password is wrong.")


class AccountLockedError(AuthError):
    """Too many failed logins; the account refuses logins until ``locked_until``."""

    def __init__(self, locked_until: datetime, shown_until: str) -> None:
        super().__init__(f"Account locked until {shown_until} after too many failed logins.")
        self.locked_until = locked_until
        self.shown_until = shown_until


class LoginThrottledError(AuthError):
    """Too many failed logins of this username lately; it must wait ``wait_seconds``."""

    def __init__(self, wait_seconds: int) -> None:
        minutes = -(-wait_seconds // 60)
        wait = (f"{wait_seconds} second{'s' if wait_seconds != 1 else ''}" if wait_seconds < 120
                else f"{minutes} minutes")
        super().__init__(f"Too many failed logins for this username; wait {wait} and try again.")
        self.wait_seconds = wait_seconds


class AccountDisabledError(AuthError):
    """The account was disabled by an administrator."""

    def __init__(self) -> None:
        super().__init__("This account is disabled; ask an administrator.")


class OperatorExistsError(AuthError):
    """The username is already taken, or the first administrator already exists."""


class UnknownOperatorError(AuthError):
    """An administrator named an operator that does not exist."""


class PermissionDeniedError(AuthError):
    """The session's role may not do this."""


class OwnAccountError(PermissionDeniedError):
    """An administrator tried to disable, or reset the password of, their own account.

    Attributes:
        action: ``"disable"`` or ``"reset"``.
    """

    def __init__(self, action: str) -> None:
        super().__init__("You cannot disable your own account." if action == "disable" else
                         "Change your own password with 'Change password', not a reset.")
        self.action = action


class LastAdminError(PermissionDeniedError):
    """Disabling this account would leave the station without an active administrator."""

    def __init__(self) -> None:
        super().__init__("The last active administrator cannot be disabled.")


class SessionExpiredError(AuthError):
    """The session timed out or was ended (logout, account disabled)."""


class PasswordChangeRequiredError(AuthError):
    """An administrator reset the password: the operator must choose a new one first."""

    def __init__(self) -> None:
        super().__init__("Your password was reset by an administrator; choose a new one first.")
