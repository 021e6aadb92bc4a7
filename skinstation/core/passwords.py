"""Password hashing (argon2id, memory-hard) and the password policy.

Clear-text passwords are only ever held in local variables: they are not stored, logged,
put in exceptions or in audit details.
"""

from __future__ import annotations

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from skinstation.core.i18n import KeyedError
from skinstation.settings import AuthSettings

MAX_PASSWORD_LENGTH = 256
COMMON_PASSWORDS = frozenset(
    {
        "1234567890",
        "12345678910",
        "administrator",
        "letmein123",
        "password",
        "password1",
        "password12",
        "password123",
        "qwertyuiop",
        "skinstation",
    }
)


class PasswordPolicyError(KeyedError, ValueError):
    """A new password breaks the password policy (the message says which rule).

    Raised with a text key (``error.password.*``; see :class:`~skinstation.core.i18n.KeyedError`).
    """


def default_hasher() -> PasswordHasher:
    """Return argon2-cffi's default hasher: argon2id, 64 MiB, 3 passes (RFC 9106 low-memory)."""
    return PasswordHasher()


def verify_password(hasher: PasswordHasher, password_hash: str, password: str) -> bool:
    """Return whether ``password`` matches ``password_hash`` (False for a malformed hash)."""
    try:
        return hasher.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


def check_password_policy(password: str, *, username: str, policy: AuthSettings) -> None:
    """Refuse a password that breaks the policy.

    Args:
        password: The proposed password.
        username: Its account (the password may not contain it).
        policy: Supplies ``min_password_length``.

    Raises:
        PasswordPolicyError: With a message saying which rule was broken.
    """
    if not isinstance(password, str):
        raise PasswordPolicyError("error.password.not_text")
    if len(password) < policy.min_password_length:
        raise PasswordPolicyError("error.password.too_short", count=policy.min_password_length)
    if len(password) > MAX_PASSWORD_LENGTH:
        raise PasswordPolicyError("error.password.too_long", count=MAX_PASSWORD_LENGTH)
    if len(username) >= 3 and username.lower() in password.lower():
        raise PasswordPolicyError("error.password.username")
    if password.lower() in COMMON_PASSWORDS or len(set(password)) == 1:
        raise PasswordPolicyError("error.password.common")
