"""Encryption at rest: columns wide enough for the ciphertext of pseudonyms, names, end users.

Pseudonyms, names, providers' end-user ids and notes are stored encrypted (see
:mod:`skinstation.core.sqlcrypto`); the ciphertext of the longest plaintext accepted needs
``VARCHAR(400)`` (64-character pseudonyms), ``VARCHAR(1200)`` (200-character names) and
``VARCHAR(256)`` (128-character end-user ids). Notes are ``TEXT`` already. Rows already there
stay plaintext (read as they are) until ``skinstation engine keys rotate`` encrypts them.
SQLite cannot change a column's type, so there the tables are rebuilt from their own
definition (rows, indexes and triggers kept; rows pointing at them stay valid).

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-05
"""

from __future__ import annotations

from skinstation.core.migration_steps import retype_string_columns

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

WIDENED = {
    "patients": {"pseudonym": (64, 400), "name": (200, 1200)},
    "captures": {"end_user_ref": (128, 256)},
}


def upgrade() -> None:
    """Widen the encrypted columns."""
    retype_string_columns(WIDENED, widen=True)


def downgrade() -> None:
    """Narrow them again (fails on PostgreSQL while encrypted values are stored)."""
    retype_string_columns(WIDENED, widen=False)
