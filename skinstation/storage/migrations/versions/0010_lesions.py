"""Lesions as identities, and patient demographics.

``lesions``: a lesion of a patient, placed on the body map (site code, front/back view,
side, an x/y point in 0..1), with an optional label and note (encrypted at rest, like label
notes) and an optional overview (macro) capture with the lesion's point marked on it.
``captures.lesion_id`` names the lesion a capture shows (captures made before stay without
one). ``patients`` get optional demographics: sex, birth year, Fitzpatrick skin type (checked
by the station before they are stored).

``lesions.overview_capture_id`` has no foreign key (captures already point at lesions, and a
cycle would make the two tables impossible to create or drop in order); erasure clears it.
SQLite cannot add (or drop) a named foreign key, so there ``captures`` is rebuilt from its
own definition with the constraint appended (removed again by the downgrade; rows, indexes
and triggers kept).

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-04
"""

from __future__ import annotations

import re

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

CAPTURE_FK = "fk_captures_lesion_id_lesions"
HEAD = re.compile(r'^CREATE TABLE\s+(["`]?)captures\1\s*\(')


def upgrade() -> None:
    """Create ``lesions``, add ``captures.lesion_id`` and the demographics columns."""
    op.create_table(
        "lesions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("uid", sa.String(36), nullable=False),
        sa.Column("patient_id", sa.Integer(), nullable=False),
        sa.Column("body_site", sa.String(64), nullable=False),
        sa.Column("view", sa.String(8), nullable=False),
        sa.Column("side", sa.String(8), nullable=False),
        sa.Column("x", sa.Float(), nullable=False),
        sa.Column("y", sa.Float(), nullable=False),
        sa.Column("label", sa.Text(), nullable=True),
        sa.Column("note", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("created_by_id", sa.Integer(), nullable=False),
        sa.Column("overview_capture_id", sa.Integer(), nullable=True),
        sa.Column("overview_x", sa.Float(), nullable=True),
        sa.Column("overview_y", sa.Float(), nullable=True),
        sa.CheckConstraint("view IN ('front', 'back')", name=op.f("ck_lesions_view")),
        sa.CheckConstraint("side IN ('left', 'right', 'midline')", name=op.f("ck_lesions_side")),
        sa.CheckConstraint("x >= 0 AND x <= 1 AND y >= 0 AND y <= 1",
                           name=op.f("ck_lesions_point")),
        sa.CheckConstraint(
            "(overview_x IS NULL) = (overview_y IS NULL) AND (overview_x IS NULL OR "
            "(overview_x >= 0 AND overview_x <= 1 AND overview_y >= 0 AND overview_y <= 1))",
            name=op.f("ck_lesions_overview_point")),
        sa.ForeignKeyConstraint(["patient_id"], ["patients.id"],
                                name=op.f("fk_lesions_patient_id_patients")),
        sa.ForeignKeyConstraint(["created_by_id"], ["operators.id"],
                                name=op.f("fk_lesions_created_by_id_operators")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_lesions")),
        sa.UniqueConstraint("uid", name=op.f("uq_lesions_uid")),
    )
    op.create_index("ix_lesions_patient_id", "lesions", ["patient_id"])
    op.add_column("patients", sa.Column("sex", sa.String(16), nullable=True))
    op.add_column("patients", sa.Column("birth_year", sa.Integer(), nullable=True))
    op.add_column("patients", sa.Column("fitzpatrick", sa.Integer(), nullable=True))
    op.add_column("captures", sa.Column("lesion_id", sa.Integer(), nullable=True))
    bind = op.get_bind()
    if bind.dialect.name == "sqlite":
        _add_sqlite_foreign_key(bind)
    else:
        op.create_foreign_key(CAPTURE_FK, "captures", "lesions", ["lesion_id"], ["id"])
    op.create_index("ix_captures_lesion_id", "captures", ["lesion_id"])


def _add_sqlite_foreign_key(connection: sa.Connection) -> None:
    """Rebuild ``captures`` with the named foreign key on ``lesion_id`` appended."""
    stored = _captures_definition(connection).rstrip()
    if not stored.endswith(")"):
        raise RuntimeError("unexpected definition of captures")
    _rebuild_captures(connection, stored[:-1] + (
        f", \n\tCONSTRAINT {CAPTURE_FK} FOREIGN KEY(lesion_id) REFERENCES lesions (id)\n)"))


def _drop_sqlite_lesion_id(connection: sa.Connection) -> None:
    """Rebuild ``captures`` without ``lesion_id`` and its foreign key."""
    definition = _captures_definition(connection)
    for pattern in (rf",\s*CONSTRAINT {CAPTURE_FK} FOREIGN KEY\(lesion_id\) REFERENCES "
                    r"lesions \(id\)\s*", r",\s*lesion_id INTEGER(?=[\s,)])"):
        definition, count = re.subn(pattern, "", definition, count=1)
        if count != 1:
            raise RuntimeError("unexpected definition of captures.lesion_id")
    _rebuild_captures(connection, definition)


def _captures_definition(connection: sa.Connection) -> str:
    stored = connection.exec_driver_sql(
        "SELECT sql FROM sqlite_master WHERE type = 'table' AND name = 'captures'").scalar()
    if stored is None or not HEAD.match(stored):
        raise RuntimeError("unexpected definition of captures")
    return str(stored)


def _rebuild_captures(connection: sa.Connection, definition: str) -> None:
    """Replace ``captures`` by ``definition``, keeping rows, indexes and triggers.

    The rows are copied back after the new table took the old name, with foreign keys
    deferred, so the rows of other tables that point at captures stay valid (as in
    :func:`skinstation.core.sqlrewrite.rebuild_sqlite_table`).
    """
    extras = connection.exec_driver_sql(
        "SELECT sql FROM sqlite_master WHERE tbl_name = 'captures' AND type IN "
        "('index', 'trigger') AND sql IS NOT NULL ORDER BY type, name").scalars().all()
    connection.exec_driver_sql("PRAGMA defer_foreign_keys = ON")
    connection.exec_driver_sql("CREATE TABLE _captures_rows AS SELECT * FROM captures")
    connection.exec_driver_sql(HEAD.sub("CREATE TABLE _captures_new (", definition, count=1))
    connection.exec_driver_sql("DROP TABLE captures")
    connection.exec_driver_sql("ALTER TABLE _captures_new RENAME TO captures")
    columns = ", ".join(row[1] for row in connection.exec_driver_sql(
        "PRAGMA table_info(captures)"))
    connection.exec_driver_sql(
        f"INSERT INTO captures ({columns}) SELECT {columns} FROM _captures_rows")  # noqa: S608
    connection.exec_driver_sql("DROP TABLE _captures_rows")
    for statement in extras:
        connection.exec_driver_sql(statement)


def downgrade() -> None:
    """Drop the lesions, the captures' lesion ids and the demographics."""
    bind = op.get_bind()
    op.drop_index("ix_captures_lesion_id", table_name="captures")
    if bind.dialect.name == "sqlite":
        _drop_sqlite_lesion_id(bind)
    else:
        op.drop_constraint(CAPTURE_FK, "captures", type_="foreignkey")
        op.drop_column("captures", "lesion_id")
    for column in ("fitzpatrick", "birth_year", "sex"):
        op.drop_column("patients", column)  # plain columns: SQLite drops them in place
    op.drop_index("ix_lesions_patient_id", table_name="lesions")
    op.drop_table("lesions")
