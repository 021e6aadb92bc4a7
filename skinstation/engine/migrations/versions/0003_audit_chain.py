"""Audit log hash chain: ``prev_hash`` and ``row_hash`` on every audit row.

Rows written before this revision are sealed into the chain here, oldest first, so the
whole log verifies (``skinstation engine audit --verify``).

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-03
"""

from __future__ import annotations

from skinstation.core.migration_steps import add_audit_chain, drop_audit_chain

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

CHAINED_COLUMNS = ("occurred_at", "actor", "action", "entity_type",
                   "entity_id", "detail")


def upgrade() -> None:
    """Add the hash columns, then chain the rows already there."""
    add_audit_chain(CHAINED_COLUMNS)


def downgrade() -> None:
    """Drop the hash columns."""
    drop_audit_chain()
