"""Model versions keep the engine's own gate measurements apart from the file's claims.

``model_versions.metrics`` stays what the model file claims about itself;
``gate_metrics`` (new) holds what the engine measured on its locked test set. Figures a
retraining job measured were stored inside ``metrics`` (keys ``locked_test`` and
``other_clinics``); they move to ``gate_metrics``. Non-finite numbers (NaN, infinity: not
JSON, refused by PostgreSQL) become null.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from skinstation.core.jsonvalues import finite_json

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

MEASURED_KEYS = ("locked_test", "other_clinics")

_versions = sa.table("model_versions", sa.column("id", sa.Integer()),
                     sa.column("metrics", sa.JSON()), sa.column("gate_metrics", sa.JSON()))


def upgrade() -> None:
    """Add ``gate_metrics`` and move the measured figures there."""
    op.add_column("model_versions", sa.Column("gate_metrics", sa.JSON(), nullable=True))
    bind = op.get_bind()
    for row_id, metrics in bind.execute(sa.select(_versions.c.id, _versions.c.metrics)).all():
        claimed = {k: v for k, v in (metrics or {}).items() if k not in MEASURED_KEYS}
        measured = {k: v for k, v in (metrics or {}).items() if k in MEASURED_KEYS}
        bind.execute(_versions.update().where(_versions.c.id == row_id).values(
            metrics=finite_json(claimed), gate_metrics=finite_json(measured) or None))


def downgrade() -> None:
    """Fold the measured figures back into ``metrics`` and drop ``gate_metrics``."""
    bind = op.get_bind()
    rows = bind.execute(sa.select(_versions.c.id, _versions.c.metrics,
                                  _versions.c.gate_metrics)).all()
    for row_id, metrics, measured in rows:
        bind.execute(_versions.update().where(_versions.c.id == row_id).values(
            metrics={**(metrics or {}), **(measured or {})}))
    with op.batch_alter_table("model_versions") as batch:
        batch.drop_column("gate_metrics")
