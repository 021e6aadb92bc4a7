"""Migration steps that the station's and the engine's Alembic scripts both take.

The two databases went through the same changes (the audit hash chain, widening the columns
that hold ciphertext); each script names its own tables and columns and calls these. Migration
history runs them: never change what an existing step does, add a new one instead.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import sqlalchemy as sa
from alembic import op

from skinstation.core.auditchain import seal_existing_rows
from skinstation.core.sqlbase import append_only_trigger_sql
from skinstation.core.sqlrewrite import rebuild_sqlite_table

AUDIT_TABLE = "audit_log"


def add_audit_chain(chained_columns: Sequence[str]) -> None:
    """Add ``prev_hash`` / ``row_hash`` to the audit log and chain the rows already there.

    Args:
        chained_columns: The audit columns each row's hash covers, in order.
    """
    op.add_column(AUDIT_TABLE, sa.Column("prev_hash", sa.String(64), nullable=True))
    op.add_column(AUDIT_TABLE, sa.Column("row_hash", sa.String(64), nullable=True))
    op.create_index("ix_audit_log_row_hash", AUDIT_TABLE, ["row_hash"], unique=True)
    seal_existing_rows(op.get_bind(), AUDIT_TABLE, chained_columns)


def drop_audit_chain() -> None:
    """Drop the hash columns (SQLite rebuilds the table: its triggers are made again)."""
    op.drop_index("ix_audit_log_row_hash", table_name=AUDIT_TABLE)
    with op.batch_alter_table(AUDIT_TABLE) as batch:
        batch.drop_column("row_hash")
        batch.drop_column("prev_hash")
    if op.get_bind().dialect.name == "sqlite":
        for statement in append_only_trigger_sql("sqlite", (AUDIT_TABLE,), ""):
            op.execute(statement)


def retype_string_columns(widened: Mapping[str, Mapping[str, tuple[int, int]]],
                          widen: bool) -> None:
    """Change ``VARCHAR`` lengths, widening (``old → new``) or narrowing back.

    Args:
        widened: Table → column → (old length, new length).
        widen: True to go to the new lengths, False to go back to the old ones.
    """
    bind = op.get_bind()
    for table, columns in widened.items():
        if bind.dialect.name == "sqlite":
            rebuild_sqlite_table(bind, table, {
                name: ((f"VARCHAR({old})", f"VARCHAR({new})") if widen
                       else (f"VARCHAR({new})", f"VARCHAR({old})"))
                for name, (old, new) in columns.items()})
            continue
        for name, (old, new) in columns.items():
            op.alter_column(table, name, type_=sa.String(new if widen else old),
                            existing_type=sa.String(old if widen else new))
