"""Visits get a UUID identity (``uid``), the session ref the engine knows them by.

A station restored from a backup reuses visit ids the engine has already seen for other
patients; UUIDs never repeat. Visits already there keep ``str(id)``, the ref they were sent
under, so the engine keeps matching their later captures to the same session.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Add ``visits.uid``, fill it with the old refs, make it unique."""
    op.add_column("visits", sa.Column("uid", sa.String(36), nullable=True))
    op.execute("UPDATE visits SET uid = CAST(id AS VARCHAR(36))")
    op.create_index("ix_visits_uid", "visits", ["uid"], unique=True)


def downgrade() -> None:
    """Drop ``visits.uid``."""
    op.drop_index("ix_visits_uid", table_name="visits")
    with op.batch_alter_table("visits") as batch:
        batch.drop_column("uid")
