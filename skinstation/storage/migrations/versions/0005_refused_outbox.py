"""Refused outbox entries: a ``refused`` state, ``server_errors`` and ``refused_at``.

A capture the engine refuses for good (a 4xx, or a server error too many times) is set aside
as ``refused`` with its reason instead of blocking the captures behind it; an administrator
puts it back to ``pending`` after a fix. SQLite cannot change a CHECK constraint in place, so
there ``outbox`` is rebuilt (batch mode; nothing references the outbox, its rows are copied).

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

NEW_STATES = "state IN ('pending', 'sent', 'confirmed', 'refused')"
OLD_STATES = "state IN ('pending', 'sent', 'confirmed')"


def upgrade() -> None:
    """Add the columns (existing rows: 0 server errors) and allow the ``refused`` state."""
    with op.batch_alter_table("outbox") as batch:
        batch.add_column(sa.Column("server_errors", sa.Integer(), nullable=False,
                                   server_default="0"))
        batch.add_column(sa.Column("refused_at", sa.DateTime(), nullable=True))
        batch.drop_constraint(op.f("ck_outbox_state"), type_="check")
        batch.create_check_constraint(op.f("ck_outbox_state"), NEW_STATES)
    with op.batch_alter_table("outbox") as batch:
        batch.alter_column("server_errors", existing_type=sa.Integer(), existing_nullable=False,
                           server_default=None)


def downgrade() -> None:
    """Put refused entries back to pending, then drop what ``upgrade`` added."""
    op.execute("UPDATE outbox SET state = 'pending' WHERE state = 'refused'")
    with op.batch_alter_table("outbox") as batch:
        batch.drop_constraint(op.f("ck_outbox_state"), type_="check")
        batch.create_check_constraint(op.f("ck_outbox_state"), OLD_STATES)
        batch.drop_column("refused_at")
        batch.drop_column("server_errors")
