"""The pixel size of each capture, so lesion sizes read in mm.

``captures.mm_per_pixel``: the stored image's pixel size in mm, set when the capture is saved
from ``camera.field_of_view_mm`` (the dermatoscope's field-of-view width) divided by the stored
image's width in pixels. It is the scale in force when the photo was taken (a dermatoscope
swapped later does not change it). Captures saved before, or with no field of view set, keep
NULL: their sizes stay in pixels. A plain nullable column: SQLite adds and drops it in place.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-04
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Add ``captures.mm_per_pixel`` (NULL for the captures already stored)."""
    op.add_column("captures", sa.Column("mm_per_pixel", sa.Float(), nullable=True))


def downgrade() -> None:
    """Drop ``captures.mm_per_pixel``."""
    op.drop_column("captures", "mm_per_pixel")
