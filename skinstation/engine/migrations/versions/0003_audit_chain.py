"""Audit log hash chain: ``prev_hash`` and ``row_hash`` on every audit row.

Rows written before this revision are sealed into the chain here, oldest first, so the
whole log verifies (``skinstation engine audit --verify``).

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from skinstation.core.auditchain import seal_existing_rows
from skinstation.core.sqlbase import append_only_trigger_sql

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

CHAINED_COLUMNS = ("occurred_at", "actor", "action", "entity_type",
                   "entity_id", "detail")


def upgrade() -> None:
    """Add the hash columns, then chain the rows already there."""
    op.add_column("audit_log", sa.Column("prev_hash", sa.String(64), nullable=True))
    op.add_column("audit_log", sa.Column("row_hash", sa.String(64), nullable=True))
    op.create_index("ix_audit_log_row_hash", "audit_log", ["row_hash"], unique=True)
    seal_existing_rows(op.get_bind(), "audit_log", CHAINED_COLUMNS)


def downgrade() -> None:
    """Drop the hash columns (SQLite rebuilds the table: its triggers are made again)."""
    op.drop_index("ix_audit_log_row_hash", table_name="audit_log")
    with op.batch_alter_table("audit_log") as batch:
        batch.drop_column("row_hash")
        batch.drop_column("prev_hash")
    if op.get_bind().dialect.name == "sqlite":
        for statement in append_only_trigger_sql("sqlite", ("audit_log",), ""):
            op.execute(statement)
