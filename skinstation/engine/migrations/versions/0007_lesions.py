"""Lesion identities on captures: the station's lesion uid and body-map placement.

A station that follows a lesion over visits sends its lesion's uid and placement (site code,
front/back view, side, x/y in 0..1) with each of its captures (optional in the upload;
captures without one keep NULLs). The review shows a case with the other captures of the
same lesion of that station, oldest first (``ix_captures_station_id_lesion_uid``).

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-04
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

COLUMNS = (
    ("lesion_uid", sa.String(36)),
    ("lesion_body_site", sa.String(64)),
    ("lesion_view", sa.String(8)),
    ("lesion_side", sa.String(8)),
    ("lesion_x", sa.Float()),
    ("lesion_y", sa.Float()),
)


def upgrade() -> None:
    """Add the lesion columns and their index."""
    for name, type_ in COLUMNS:
        op.add_column("captures", sa.Column(name, type_, nullable=True))
    op.create_index("ix_captures_station_id_lesion_uid", "captures",
                    ["station_id", "lesion_uid"])


def downgrade() -> None:
    """Drop them.

    A plain ``DROP COLUMN`` on SQLite too: rebuilding ``captures`` the batch way would break
    the foreign keys of the predictions and reviews that name it.
    """
    op.drop_index("ix_captures_station_id_lesion_uid", table_name="captures")
    for name, _ in reversed(COLUMNS):
        op.drop_column("captures", name)
