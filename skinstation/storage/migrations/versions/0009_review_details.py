"""Review details: agree vs correct, the free text of "other", and undo (withdrawal).

One row per review label made with the review room's two actions: whether the dermatologist
agreed with the model or corrected it, the free text of an "other" outcome (encrypted at rest,
like notes), and - when the dermatologist undid the review before it was synced - who withdrew
it and when. ``labels`` stays append-only: a withdrawn review keeps its label row (and its
audit rows); queries leave it out. Reviews made before this migration have no row (their
action is unknown).

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-04
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Create ``review_details``."""
    op.create_table(
        "review_details",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("label_id", sa.Integer(), nullable=False),
        sa.Column("action", sa.String(16), nullable=False),
        sa.Column("other_text", sa.Text(), nullable=True),
        sa.Column("withdrawn_at", sa.DateTime(), nullable=True),
        sa.Column("withdrawn_by_id", sa.Integer(), nullable=True),
        sa.CheckConstraint("action IN ('agree', 'correct')",
                           name=op.f("ck_review_details_action")),
        sa.ForeignKeyConstraint(["label_id"], ["labels.id"],
                                name=op.f("fk_review_details_label_id_labels")),
        sa.ForeignKeyConstraint(["withdrawn_by_id"], ["operators.id"],
                                name=op.f("fk_review_details_withdrawn_by_id_operators")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_review_details")),
        sa.UniqueConstraint("label_id", name=op.f("uq_review_details_label_id")),
    )


def downgrade() -> None:
    """Drop ``review_details`` (withdrawn reviews then count again; "other" texts are lost)."""
    op.drop_table("review_details")
