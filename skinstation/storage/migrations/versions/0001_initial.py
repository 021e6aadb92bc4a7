"""Initial station schema, with append-only triggers on the audit log and labels.

Tables: operators, patients, visits, captures, predictions, labels, audit log, sync outbox.

Revision ID: 0001
Revises:
Create Date: 2025-01-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from skinstation.core.sqlbase import append_only_trigger_sql

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

APPEND_ONLY_TABLES = ("audit_log", "labels")


def _pk(table: str) -> sa.PrimaryKeyConstraint:
    return sa.PrimaryKeyConstraint("id", name=f"pk_{table}")


def _fk(table: str, column: str, target: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint([column], [f"{target}.id"], name=f"fk_{table}_{column}_{target}")


def upgrade() -> None:
    """Create every table, index and append-only trigger of the first schema."""
    op.create_table(
        "operators",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("username", sa.String(64), nullable=False),
        sa.Column("display_name", sa.String(200), nullable=False),
        sa.Column("role", sa.String(20), nullable=False),
        sa.Column("password_hash", sa.String(255), nullable=False),
        sa.Column("disabled", sa.Boolean(), nullable=False),
        sa.Column("failed_login_count", sa.Integer(), nullable=False),
        sa.Column("locked_until", sa.DateTime(), nullable=True),
        sa.Column("password_changed_at", sa.DateTime(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        _pk("operators"),
        sa.CheckConstraint(
            "role IN ('staff', 'dermatologist', 'admin')", name=op.f("ck_operators_role")
        ),
        sa.UniqueConstraint("username", name="uq_operators_username"),
    )
    op.create_table(
        "audit_log",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("occurred_at", sa.DateTime(), nullable=False),
        sa.Column("actor_id", sa.Integer(), nullable=True),
        sa.Column("station_id", sa.String(64), nullable=False),
        sa.Column("action", sa.String(64), nullable=False),
        sa.Column("entity_type", sa.String(32), nullable=True),
        sa.Column("entity_id", sa.String(64), nullable=True),
        sa.Column("detail", sa.JSON(), nullable=False),
        _pk("audit_log"),
        _fk("audit_log", "actor_id", "operators"),
    )
    op.create_index("ix_audit_log_occurred_at", "audit_log", ["occurred_at"])
    op.create_index("ix_audit_log_actor_id", "audit_log", ["actor_id"])
    op.create_index("ix_audit_log_action", "audit_log", ["action"])
    op.create_index("ix_audit_log_entity", "audit_log", ["entity_type", "entity_id"])
    op.create_table(
        "patients",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("pseudonym", sa.String(64), nullable=False),
        sa.Column("name", sa.String(200), nullable=True),
        sa.Column("created_by_id", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        _pk("patients"),
        sa.UniqueConstraint("pseudonym", name="uq_patients_pseudonym"),
        _fk("patients", "created_by_id", "operators"),
    )
    op.create_table(
        "visits",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("patient_id", sa.Integer(), nullable=False),
        sa.Column("operator_id", sa.Integer(), nullable=False),
        sa.Column("station_id", sa.String(64), nullable=False),
        sa.Column("opened_at", sa.DateTime(), nullable=False),
        sa.Column("closed_at", sa.DateTime(), nullable=True),
        _pk("visits"),
        _fk("visits", "patient_id", "patients"),
        _fk("visits", "operator_id", "operators"),
    )
    op.create_index("ix_visits_patient_id", "visits", ["patient_id"])
    op.create_table(
        "captures",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("uid", sa.String(36), nullable=False),
        sa.Column("visit_id", sa.Integer(), nullable=False),
        sa.Column("operator_id", sa.Integer(), nullable=False),
        sa.Column("station_id", sa.String(64), nullable=False),
        sa.Column("device_id", sa.String(128), nullable=False),
        sa.Column("band", sa.String(32), nullable=False),
        sa.Column("body_site", sa.String(64), nullable=False),
        sa.Column("image_ref", sa.String(128), nullable=False),
        sa.Column("image_sha256", sa.String(64), nullable=False),
        sa.Column("image_format", sa.String(8), nullable=False),
        sa.Column("image_size", sa.Integer(), nullable=False),
        sa.Column("width", sa.Integer(), nullable=False),
        sa.Column("height", sa.Integer(), nullable=False),
        sa.Column("access_time", sa.DateTime(), nullable=False),
        sa.Column("capture_time", sa.DateTime(), nullable=False),
        sa.Column("saved_at", sa.DateTime(), nullable=False),
        sa.Column("uploaded_at", sa.DateTime(), nullable=True),
        sa.Column("multispectral_group_id", sa.String(36), nullable=True),
        sa.Column("multispectral_index", sa.Integer(), nullable=True),
        _pk("captures"),
        sa.UniqueConstraint("uid", name="uq_captures_uid"),
        sa.UniqueConstraint(
            "multispectral_group_id",
            "multispectral_index",
            name="uq_captures_multispectral_group_id_multispectral_index",
        ),
        sa.CheckConstraint(
            "(multispectral_group_id IS NULL) = (multispectral_index IS NULL)",
            name=op.f("ck_captures_multispectral_pair"),
        ),
        sa.CheckConstraint("width > 0 AND height > 0", name=op.f("ck_captures_positive_size")),
        _fk("captures", "visit_id", "visits"),
        _fk("captures", "operator_id", "operators"),
    )
    op.create_index("ix_captures_visit_id", "captures", ["visit_id"])
    op.create_index("ix_captures_image_sha256", "captures", ["image_sha256"])
    op.create_index("ix_captures_capture_time", "captures", ["capture_time"])
    op.create_table(
        "predictions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("capture_id", sa.Integer(), nullable=False),
        sa.Column("model_version", sa.String(64), nullable=False),
        sa.Column("class_probabilities", sa.JSON(), nullable=False),
        sa.Column("group_probabilities", sa.JSON(), nullable=False),
        sa.Column("decision", sa.String(32), nullable=False),
        sa.Column("referral", sa.Boolean(), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        _pk("predictions"),
        _fk("predictions", "capture_id", "captures"),
    )
    op.create_index("ix_predictions_capture_id", "predictions", ["capture_id"])
    op.create_table(
        "labels",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("capture_id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("code", sa.String(32), nullable=False),
        sa.Column("note", sa.Text(), nullable=True),
        sa.Column("author_id", sa.Integer(), nullable=False),
        sa.Column("supersedes_id", sa.Integer(), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        _pk("labels"),
        sa.CheckConstraint("kind IN ('operator', 'review')", name=op.f("ck_labels_kind")),
        _fk("labels", "capture_id", "captures"),
        _fk("labels", "author_id", "operators"),
        _fk("labels", "supersedes_id", "labels"),
    )
    op.create_index("ix_labels_capture_id", "labels", ["capture_id"])
    op.create_index(
        "uq_labels_one_original",
        "labels",
        ["capture_id"],
        unique=True,
        sqlite_where=sa.text("kind = 'operator'"),
        postgresql_where=sa.text("kind = 'operator'"),
    )
    op.create_table(
        "outbox",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("capture_id", sa.Integer(), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.Column("sent_at", sa.DateTime(), nullable=True),
        sa.Column("confirmed_at", sa.DateTime(), nullable=True),
        _pk("outbox"),
        sa.CheckConstraint(
            "state IN ('pending', 'sent', 'confirmed')", name=op.f("ck_outbox_state")
        ),
        sa.UniqueConstraint("capture_id", name="uq_outbox_capture_id"),
        _fk("outbox", "capture_id", "captures"),
    )
    op.create_index("ix_outbox_state", "outbox", ["state"])
    _create_append_only_triggers()


def _create_append_only_triggers() -> None:
    """Make the audit log and labels refuse UPDATE and DELETE in the database itself."""
    dialect = op.get_bind().dialect.name
    for statement in append_only_trigger_sql(dialect, APPEND_ONLY_TABLES, "skinstation_forbid_change"):
        op.execute(statement)


def downgrade() -> None:
    """Drop everything ``upgrade`` created."""
    dialect = op.get_bind().dialect.name
    for table in (
        "outbox",
        "labels",
        "predictions",
        "captures",
        "visits",
        "patients",
        "audit_log",
        "operators",
    ):
        op.drop_table(table)
    if dialect == "postgresql":
        op.execute("DROP FUNCTION IF EXISTS skinstation_forbid_change()")
