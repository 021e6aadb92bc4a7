"""Operator accounts and access: argon2 passwords, lockout, sessions, role permissions.

Sits above :mod:`skinstation.storage` (whose ``operators`` and ``audit_log`` tables it uses)
and below the UI, which calls :class:`AuthService` and the ``can_*`` permission functions.
"""

from skinstation.auth.accounts import OperatorAccount, normalise_username
from skinstation.auth.errors import (
    AccountDisabledError,
    AccountLockedError,
    AuthError,
    InvalidCredentialsError,
    LastAdminError,
    LoginThrottledError,
    OperatorExistsError,
    OwnAccountError,
    PasswordChangeRequiredError,
    PasswordPolicyError,
    PermissionDeniedError,
    SessionExpiredError,
    UnknownOperatorError,
    WrongCurrentPasswordError,
)
from skinstation.auth.permissions import (
    Permission,
    can_capture,
    can_change_station_settings,
    can_edit_review,
    can_manage_operators,
    can_review,
    can_view_audit_log,
    can_view_history,
    can_view_sync_status,
)
from skinstation.auth.service import AuthService
from skinstation.auth.sessions import Session
from skinstation.core.passwords import check_password_policy, default_hasher
from skinstation.storage.models import Role

__all__ = [
    "AccountDisabledError",
    "AccountLockedError",
    "AuthError",
    "AuthService",
    "InvalidCredentialsError",
    "LastAdminError",
    "LoginThrottledError",
    "OperatorAccount",
    "OperatorExistsError",
    "OwnAccountError",
    "PasswordChangeRequiredError",
    "PasswordPolicyError",
    "Permission",
    "PermissionDeniedError",
    "Role",
    "Session",
    "SessionExpiredError",
    "UnknownOperatorError",
    "WrongCurrentPasswordError",
    "can_capture",
    "can_change_station_settings",
    "can_edit_review",
    "can_manage_operators",
    "can_review",
    "can_view_audit_log",
    "can_view_history",
    "can_view_sync_status",
    "check_password_policy",
    "default_hasher",
    "normalise_username",
]
