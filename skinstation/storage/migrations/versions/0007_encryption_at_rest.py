"""Encryption at rest: columns wide enough for the ciphertext of pseudonyms and names.

Pseudonyms, names and notes are stored encrypted (``enc:<key>:<g|d>:<base64url>``, see
:mod:`skinstation.core.sqlcrypto`); the ciphertext of the longest plaintext the station
accepts (64 / 200 characters) needs ``VARCHAR(400)`` / ``VARCHAR(1200)``. Notes are ``TEXT``
already. Rows already there stay plaintext (read as they are) until ``skinstation keys
rotate`` encrypts them. SQLite cannot change a column's type, so there the tables are rebuilt
from their own definition (rows, indexes and triggers kept; visits keep their patients).

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-05
"""

from __future__ import annotations

from skinstation.core.migration_steps import retype_string_columns

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

WIDENED = {
    "patients": {"pseudonym": (64, 400), "name": (200, 1200)},
    "erasures": {"pseudonym": (64, 400)},
}


def upgrade() -> None:
    """Widen the encrypted columns."""
    retype_string_columns(WIDENED, widen=True)


def downgrade() -> None:
    """Narrow them again (fails on PostgreSQL while encrypted values are stored)."""
    retype_string_columns(WIDENED, widen=False)
