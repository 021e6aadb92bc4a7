"""Operators: ``must_change_password``, set by an administrator's password reset.

An operator whose password an administrator reset (to a temporary one) must choose a new
password at the next login before doing anything else; changing it clears the flag. Existing
accounts get ``false``.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-04
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Add ``operators.must_change_password`` (false for every existing account)."""
    op.add_column("operators", sa.Column("must_change_password", sa.Boolean(), nullable=False,
                                         server_default=sa.false()))


def downgrade() -> None:
    """Drop it (a pending forced change is forgotten).

    A plain ``DROP COLUMN`` on SQLite too (3.35+): rebuilding ``operators`` the batch way
    would break the foreign keys of every table that names an operator.
    """
    op.drop_column("operators", "must_change_password")
