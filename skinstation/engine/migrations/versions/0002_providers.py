"""Third-party providers: accounts, hashed API keys, usage and rate counters; provider captures.

``captures`` gains ``source`` (``station`` or ``provider``), ``provider_id`` and
``end_user_ref``; ``station_id`` and ``session_id`` become nullable (a provider's consented
image has neither), guarded by a CHECK constraint. SQLite cannot alter a column, so there the
table is rebuilt in place; its rows are copied back *after* the new table took the old name,
with foreign keys deferred, so the predictions and reviews pointing at them stay valid.

Revision ID: 0002
Revises: 0001
Create Date: 2025-06-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

SOURCE_CHECK = (
    "(source = 'station' AND station_id IS NOT NULL AND session_id IS NOT NULL "
    "AND provider_id IS NULL AND end_user_ref IS NULL) OR "
    "(source = 'provider' AND station_id IS NULL AND session_id IS NULL "
    "AND provider_id IS NOT NULL AND end_user_ref IS NOT NULL)"
)
OLD_COLUMNS = (
    "id, uid, station_id, session_id, band, body_site, device_id, operator, image_ref, "
    "image_sha256, image_size, image_format, width, height, access_time, capture_time, "
    "saved_at, received_at, multispectral_group_id, multispectral_index, original_label, "
    "original_label_author, original_label_note"
)
CAPTURE_INDEXES = (
    ("ix_captures_capture_time", ["capture_time"]),
    ("ix_captures_image_sha256", ["image_sha256"]),
    ("ix_captures_session_id", ["session_id"]),
    ("ix_captures_station_id", ["station_id"]),
)


def upgrade() -> None:
    """Create the provider tables and let captures come from providers."""
    _create_provider_tables()
    if op.get_bind().dialect.name == "sqlite":
        _rebuild_sqlite_captures(with_providers=True)
    else:
        op.add_column("captures", sa.Column("source", sa.String(length=16), nullable=False,
                                            server_default="station"))
        op.alter_column("captures", "source", server_default=None)
        op.add_column("captures", sa.Column("provider_id", sa.Integer(), nullable=True))
        op.add_column("captures", sa.Column("end_user_ref", sa.String(length=128),
                                            nullable=True))
        op.alter_column("captures", "station_id", existing_type=sa.Integer(), nullable=True)
        op.alter_column("captures", "session_id", existing_type=sa.Integer(), nullable=True)
        op.create_foreign_key("fk_captures_provider_id_providers", "captures", "providers",
                              ["provider_id"], ["id"])
        op.create_check_constraint("ck_captures_source", "captures", SOURCE_CHECK)
    op.create_index("ix_captures_provider_id", "captures", ["provider_id"])


def _create_provider_tables() -> None:
    op.create_table(
        "providers",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("contact", sa.String(length=200), nullable=False),
        sa.Column("requests_per_minute", sa.Integer(), nullable=False),
        sa.Column("requests_per_day", sa.Integer(), nullable=False),
        sa.Column("disabled", sa.Boolean(), nullable=False),
        sa.Column("created_by", sa.String(length=128), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.CheckConstraint("requests_per_minute > 0 AND requests_per_day > 0",
                           name="ck_providers_quotas"),
        sa.PrimaryKeyConstraint("id", name="pk_providers"),
        sa.UniqueConstraint("name", name="uq_providers_name"),
    )
    op.create_table(
        "provider_keys",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("provider_id", sa.Integer(), nullable=False),
        sa.Column("key_id", sa.String(length=16), nullable=False),
        sa.Column("key_hash", sa.String(length=64), nullable=False),
        sa.Column("scopes", sa.String(length=100), nullable=False),
        sa.Column("label", sa.String(length=200), nullable=False),
        sa.Column("created_by", sa.String(length=128), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("expires_at", sa.DateTime(), nullable=True),
        sa.Column("revoked_at", sa.DateTime(), nullable=True),
        sa.Column("revoked_by", sa.String(length=128), nullable=True),
        sa.Column("last_used_at", sa.DateTime(), nullable=True),
        sa.Column("rotated_from_id", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(["provider_id"], ["providers.id"],
                                name="fk_provider_keys_provider_id_providers"),
        sa.ForeignKeyConstraint(["rotated_from_id"], ["provider_keys.id"],
                                name="fk_provider_keys_rotated_from_id_provider_keys"),
        sa.PrimaryKeyConstraint("id", name="pk_provider_keys"),
        sa.UniqueConstraint("key_id", name="uq_provider_keys_key_id"),
    )
    op.create_index("ix_provider_keys_provider_id", "provider_keys", ["provider_id"])
    counters = [sa.Column(name, sa.Integer(), nullable=False) for name in (
        "requests", "classified", "not_assessable", "submitted", "rejected", "failed",
        "throttled", "busy")]
    op.create_table(
        "provider_usage",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("provider_id", sa.Integer(), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        *counters,
        sa.ForeignKeyConstraint(["provider_id"], ["providers.id"],
                                name="fk_provider_usage_provider_id_providers"),
        sa.PrimaryKeyConstraint("id", name="pk_provider_usage"),
        sa.UniqueConstraint("provider_id", "day", name="uq_provider_usage_provider_id_day"),
    )
    op.create_table(
        "provider_rate_windows",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("provider_id", sa.Integer(), nullable=False),
        sa.Column("window_start", sa.DateTime(), nullable=False),
        sa.Column("count", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(["provider_id"], ["providers.id"],
                                name="fk_provider_rate_windows_provider_id_providers"),
        sa.PrimaryKeyConstraint("id", name="pk_provider_rate_windows"),
        sa.UniqueConstraint("provider_id", "window_start",
                            name="uq_provider_rate_windows_provider_id_window_start"),
    )
    op.create_index("ix_provider_rate_windows_window_start", "provider_rate_windows",
                    ["window_start"])


def _captures_table(name: str, *, with_providers: bool) -> None:
    extra: list[sa.schema.SchemaItem] = []
    if with_providers:
        extra = [
            sa.Column("source", sa.String(length=16), nullable=False),
            sa.Column("provider_id", sa.Integer(), nullable=True),
            sa.Column("end_user_ref", sa.String(length=128), nullable=True),
            sa.ForeignKeyConstraint(["provider_id"], ["providers.id"],
                                    name="fk_captures_provider_id_providers"),
            sa.CheckConstraint(SOURCE_CHECK, name="ck_captures_source"),
        ]
    op.create_table(
        name,
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("uid", sa.String(length=36), nullable=False),
        sa.Column("station_id", sa.Integer(), nullable=with_providers),
        sa.Column("session_id", sa.Integer(), nullable=with_providers),
        sa.Column("band", sa.String(length=32), nullable=False),
        sa.Column("body_site", sa.String(length=64), nullable=False),
        sa.Column("device_id", sa.String(length=128), nullable=False),
        sa.Column("operator", sa.String(length=64), nullable=False),
        sa.Column("image_ref", sa.String(length=128), nullable=False),
        sa.Column("image_sha256", sa.String(length=64), nullable=False),
        sa.Column("image_size", sa.Integer(), nullable=False),
        sa.Column("image_format", sa.String(length=8), nullable=False),
        sa.Column("width", sa.Integer(), nullable=False),
        sa.Column("height", sa.Integer(), nullable=False),
        sa.Column("access_time", sa.DateTime(), nullable=False),
        sa.Column("capture_time", sa.DateTime(), nullable=False),
        sa.Column("saved_at", sa.DateTime(), nullable=False),
        sa.Column("received_at", sa.DateTime(), nullable=False),
        sa.Column("multispectral_group_id", sa.String(length=36), nullable=True),
        sa.Column("multispectral_index", sa.Integer(), nullable=True),
        sa.Column("original_label", sa.String(length=32), nullable=True),
        sa.Column("original_label_author", sa.String(length=64), nullable=True),
        sa.Column("original_label_note", sa.Text(), nullable=True),
        *extra,
        sa.ForeignKeyConstraint(
            ["session_id"], ["exam_sessions.id"], name="fk_captures_session_id_exam_sessions"
        ),
        sa.ForeignKeyConstraint(
            ["station_id"], ["stations.id"], name="fk_captures_station_id_stations"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_captures"),
        sa.UniqueConstraint("uid", name="uq_captures_uid"),
    )


def _rebuild_sqlite_captures(*, with_providers: bool) -> None:
    """Give SQLite's ``captures`` the new (or, downgrading, the old) definition, keeping rows.

    ``DROP TABLE`` of a parent table deletes its rows first; with foreign keys deferred, the
    predictions and reviews left without a parent count as pending violations, which the rows
    copied into the renamed new table resolve before the commit checks them.
    """
    op.execute("PRAGMA defer_foreign_keys = ON")
    copy = f"SELECT {OLD_COLUMNS} FROM"
    op.execute(f"CREATE TABLE _captures_rows AS {copy} captures")
    _captures_table("_captures_new", with_providers=with_providers)
    op.execute("DROP TABLE captures")
    op.execute("ALTER TABLE _captures_new RENAME TO captures")
    if with_providers:
        restore = f"INSERT INTO captures ({OLD_COLUMNS}, source) SELECT {OLD_COLUMNS}, 'station'"
    else:
        restore = f"INSERT INTO captures ({OLD_COLUMNS}) SELECT {OLD_COLUMNS}"
    op.execute(f"{restore} FROM _captures_rows")
    op.execute("DROP TABLE _captures_rows")
    for name, columns in CAPTURE_INDEXES:
        op.create_index(name, "captures", columns)


def downgrade() -> None:
    """Back to 0001 (refused while provider captures exist: 0001 cannot hold them)."""
    bind = op.get_bind()
    count = bind.execute(sa.text("SELECT COUNT(*) FROM captures WHERE source = 'provider'"))
    if count.scalar_one():
        raise RuntimeError("provider captures exist; 0001 cannot hold them")
    op.drop_index("ix_captures_provider_id", table_name="captures")
    if bind.dialect.name == "sqlite":
        _rebuild_sqlite_captures(with_providers=False)
    else:
        op.drop_constraint("ck_captures_source", "captures", type_="check")
        op.drop_constraint("fk_captures_provider_id_providers", "captures", type_="foreignkey")
        op.drop_column("captures", "end_user_ref")
        op.drop_column("captures", "provider_id")
        op.drop_column("captures", "source")
        op.alter_column("captures", "station_id", existing_type=sa.Integer(), nullable=False)
        op.alter_column("captures", "session_id", existing_type=sa.Integer(), nullable=False)
    for table in ("provider_rate_windows", "provider_usage", "provider_keys", "providers"):
        op.drop_table(table)
