"""Erasures: what this station erased, queued for the engine until it confirms.

A patient erased here (``skinstation patient erase``) or captures past the retention period
leave one row: the reason, the erased captures' uids, and the patient's pseudonym, which names
the patient to the engine and is set NULL once the engine confirms.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-04
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Create ``erasures``."""
    op.create_table(
        "erasures",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("requested_at", sa.DateTime(), nullable=False),
        sa.Column("reason", sa.String(32), nullable=False),
        sa.Column("pseudonym", sa.String(64), nullable=True),
        sa.Column("capture_uids", sa.JSON(), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("confirmed_at", sa.DateTime(), nullable=True),
        sa.CheckConstraint("reason IN ('patient_request', 'entered_in_error', 'retention')",
                           name=op.f("ck_erasures_reason")),
        sa.CheckConstraint("state IN ('pending', 'confirmed')", name=op.f("ck_erasures_state")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_erasures")),
    )
    op.create_index(op.f("ix_erasures_state"), "erasures", ["state"])


def downgrade() -> None:
    """Drop ``erasures`` (pending erasures are then never sent to the engine)."""
    op.drop_index(op.f("ix_erasures_state"), table_name="erasures")
    op.drop_table("erasures")
