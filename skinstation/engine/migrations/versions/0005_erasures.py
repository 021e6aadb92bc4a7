"""Erasure records, erased capture uids, and the cases each training job trained on.

``erasures``: what was erased, why and by whom (counts only: no pseudonym, name or patient
id). ``erased_captures``: uids the engine refuses to store again. ``training_cases``: the
synced cases (capture uids) a job trained on, so the model versions that have seen an erased
case stay known (``erased_at``).

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-04
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Create the three tables."""
    op.create_table(
        "erasures",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("station_id", sa.Integer(), nullable=True),
        sa.Column("station_erasure_id", sa.Integer(), nullable=True),
        sa.Column("reason", sa.String(32), nullable=False),
        sa.Column("actor", sa.String(128), nullable=False),
        sa.Column("erased_at", sa.DateTime(), nullable=False),
        sa.Column("counts", sa.JSON(), nullable=False),
        sa.CheckConstraint("reason IN ('patient_request', 'entered_in_error', 'retention')",
                           name="ck_erasures_reason"),
        sa.ForeignKeyConstraint(["station_id"], ["stations.id"],
                                name="fk_erasures_station_id_stations"),
        sa.PrimaryKeyConstraint("id", name="pk_erasures"),
    )
    op.create_index("ix_erasures_station_id", "erasures", ["station_id"])
    op.create_table(
        "erased_captures",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("uid", sa.String(36), nullable=False),
        sa.Column("erasure_id", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(["erasure_id"], ["erasures.id"],
                                name="fk_erased_captures_erasure_id_erasures"),
        sa.PrimaryKeyConstraint("id", name="pk_erased_captures"),
        sa.UniqueConstraint("uid", name="uq_erased_captures_uid"),
    )
    op.create_index("ix_erased_captures_erasure_id", "erased_captures", ["erasure_id"])
    op.create_table(
        "training_cases",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("job_id", sa.Integer(), nullable=False),
        sa.Column("capture_uid", sa.String(36), nullable=False),
        sa.Column("erased_at", sa.DateTime(), nullable=True),
        sa.ForeignKeyConstraint(["job_id"], ["training_jobs.id"],
                                name="fk_training_cases_job_id_training_jobs"),
        sa.PrimaryKeyConstraint("id", name="pk_training_cases"),
        sa.UniqueConstraint("job_id", "capture_uid", name="uq_training_cases_job_id_capture_uid"),
    )
    op.create_index("ix_training_cases_capture_uid", "training_cases", ["capture_uid"])


def downgrade() -> None:
    """Drop the three tables."""
    op.drop_index("ix_training_cases_capture_uid", table_name="training_cases")
    op.drop_table("training_cases")
    op.drop_index("ix_erased_captures_erasure_id", table_name="erased_captures")
    op.drop_table("erased_captures")
    op.drop_index("ix_erasures_station_id", table_name="erasures")
    op.drop_table("erasures")
