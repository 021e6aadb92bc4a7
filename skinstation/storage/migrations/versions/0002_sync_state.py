"""Sync client state: reviews received from the engine, and named sync values.

Revision ID: 0002
Revises: 0001
Create Date: 2025-02-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Create ``engine_reviews`` and ``sync_state``."""
    op.create_table(
        "engine_reviews",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("engine_review_id", sa.Integer(), nullable=False),
        sa.Column("capture_id", sa.Integer(), nullable=False),
        sa.Column("label_id", sa.Integer(), nullable=False),
        sa.Column("reviewer", sa.String(128), nullable=False),
        sa.Column("reviewed_at", sa.DateTime(), nullable=False),
        sa.Column("received_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_engine_reviews"),
        sa.UniqueConstraint("engine_review_id", name="uq_engine_reviews_engine_review_id"),
        sa.UniqueConstraint("label_id", name="uq_engine_reviews_label_id"),
        sa.ForeignKeyConstraint(
            ["capture_id"], ["captures.id"], name="fk_engine_reviews_capture_id_captures"
        ),
        sa.ForeignKeyConstraint(
            ["label_id"], ["labels.id"], name="fk_engine_reviews_label_id_labels"
        ),
    )
    op.create_index("ix_engine_reviews_capture_id", "engine_reviews", ["capture_id"])
    op.create_table(
        "sync_state",
        sa.Column("key", sa.String(64), nullable=False),
        sa.Column("value", sa.Text(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("key", name="pk_sync_state"),
    )


def downgrade() -> None:
    """Drop what ``upgrade`` created."""
    op.drop_table("sync_state")
    op.drop_index("ix_engine_reviews_capture_id", table_name="engine_reviews")
    op.drop_table("engine_reviews")
