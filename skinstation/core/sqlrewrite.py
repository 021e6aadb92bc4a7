"""Rewriting tables in place: column types on SQLite, rows of append-only tables.

SQLite cannot change a column's type, so :func:`rebuild_sqlite_table` rebuilds the table
from its own stored definition with the types replaced, keeping its rows, indexes and
triggers exactly (whatever earlier migrations made of it). Rows are copied back *after* the
new table took the old name, with foreign keys deferred, so rows of other tables pointing at
it stay valid (``DROP TABLE`` first deletes its rows, which defers a violation that the
copied rows resolve before the commit).

:func:`append_only_lifted` lets one transaction update an append-only table (the rotation
commands re-encrypting notes): it lifts the UPDATE trigger for that transaction only and puts
it back exactly as the migrations made it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from sqlalchemy.engine import Connection


def rebuild_sqlite_table(connection: Connection, table: str,
                         types: Mapping[str, tuple[str, str]]) -> None:
    """Change column types of a SQLite table, keeping rows, indexes and triggers.

    Migration history runs this: never change what it does.

    Args:
        connection: The migration's connection (inside its transaction).
        table: The table.
        types: Column name → (declared type now, declared type wanted), e.g.
            ``{"pseudonym": ("VARCHAR(64)", "VARCHAR(400)")}``.

    Raises:
        RuntimeError: The table or one of the columns is not declared as expected.
    """
    stored = connection.exec_driver_sql(
        "SELECT sql FROM sqlite_master WHERE type = 'table' AND name = ?", (table,)).scalar()
    if stored is None:
        raise RuntimeError(f"no table {table} to rebuild")
    head = re.compile(rf'^CREATE TABLE\s+(["`]?){re.escape(table)}\1\s*\(')
    if not head.match(stored):
        raise RuntimeError(f"unexpected definition of {table}: {stored[:60]!r}")
    definition = head.sub(f"CREATE TABLE _{table}_new (", stored, count=1)
    for column, (old, new) in types.items():
        declared = re.compile(
            rf'(\n\s*["`]?{re.escape(column)}["`]?\s+){re.escape(old)}(?=[\s,)])')
        definition, count = declared.subn(rf"\g<1>{new}", definition)
        if count != 1:
            raise RuntimeError(f"column {table}.{column} is not declared {old}")
    extras = connection.exec_driver_sql(
        "SELECT sql FROM sqlite_master WHERE tbl_name = ? AND type IN ('index', 'trigger') "
        "AND sql IS NOT NULL ORDER BY type, name", (table,)).scalars().all()
    connection.exec_driver_sql("PRAGMA defer_foreign_keys = ON")
    # table names come from migration scripts, never from input
    connection.exec_driver_sql(f"CREATE TABLE _{table}_rows AS SELECT * FROM {table}")  # noqa: S608
    connection.exec_driver_sql(definition)
    connection.exec_driver_sql(f"DROP TABLE {table}")
    connection.exec_driver_sql(f"ALTER TABLE _{table}_new RENAME TO {table}")
    connection.exec_driver_sql(f"INSERT INTO {table} SELECT * FROM _{table}_rows")  # noqa: S608
    connection.exec_driver_sql(f"DROP TABLE _{table}_rows")
    for statement in extras:
        connection.exec_driver_sql(statement)


