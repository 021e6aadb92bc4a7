"""Account names, the same rule for station operators and engine accounts."""

from __future__ import annotations

import re

USERNAME = re.compile(r"[a-z0-9][a-z0-9._-]{1,63}")
"""A valid username after :func:`normalise_username`: 2-64 lower-case letters, digits, ``._-``."""


def normalise_username(username: str) -> str:
    """Return the canonical (stripped, lower-case) form of a username."""
    return username.strip().lower()
