"""Bearer tokens and enrollment codes: generated from ``secrets``, stored only as sha256.

Tokens carry 256 random bits, so a plain sha256 digest is a safe verifier (no dictionary to
attack) and lets any API process find the row with one indexed lookup; passwords, which people
choose, are hashed with argon2id instead (:mod:`skinstation.core.passwords`).
"""

from __future__ import annotations

import hashlib
import secrets

STATION_TOKEN_PREFIX = "sst_"  # noqa: S105 - a prefix, not a secret
SESSION_TOKEN_PREFIX = "ses_"  # noqa: S105 - a prefix, not a secret
CODE_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"  # no 0/O, 1/I: read aloud and typed
CODE_GROUPS, CODE_GROUP_LENGTH = 4, 5  # 20 symbols x 5 bits = 100 bits


def new_token(prefix: str) -> str:
    """A fresh bearer token (``prefix`` + 43 url-safe characters, 256 bits)."""
    return prefix + secrets.token_urlsafe(32)


def new_enrollment_code() -> str:
    """A fresh one-time enrollment code, e.g. ``K7Q2M-9XHTA-...`` (100 bits)."""
    groups = (
        "".join(secrets.choice(CODE_ALPHABET) for _ in range(CODE_GROUP_LENGTH))
        for _ in range(CODE_GROUPS)
    )
    return "-".join(groups)


def normalise_code(code: str) -> str:
    """Canonical form of a typed code: upper-case, dashes and spaces removed."""
    return "".join(ch for ch in code.upper() if ch.isalnum())


def digest(secret: str) -> str:
    """The stored form of a token or code: hex sha256."""
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()
