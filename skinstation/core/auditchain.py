"""Tamper evidence for the audit logs: a SHA-256 hash chain over the rows, oldest first.

Both audit logs (the station's and the engine's) are append-only: database triggers refuse
UPDATE, DELETE and TRUNCATE. The chain makes what a trigger cannot stop evident: someone with
the database files or superuser rights who drops the trigger and edits, deletes or reorders a
row. Every row stores ``prev_hash`` (the previous row's ``row_hash``, :data:`GENESIS` for the
first) and ``row_hash = SHA-256(prev_hash + canonical JSON of the row's fields)``.

:func:`verify_chain` recomputes the chain: a changed row fails its own hash, a deleted or
reordered row breaks the link of the row after it. Cutting rows off the *end* leaves a
shorter, consistent chain, so the verify commands print the head hash: writing it down (the
admin's weekly check, a ticket) anchors the log up to that point.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy import Connection, text
from sqlalchemy.orm import Session

GENESIS = "0" * 64
"""``prev_hash`` of the first row of a chain."""

HASH_LENGTH = 64


def _canonical_value(value: Any) -> Any:
    if isinstance(value, datetime):
        aware = value if value.tzinfo is not None else value.replace(tzinfo=UTC)
        return aware.astimezone(UTC).isoformat(timespec="microseconds")
    return value


def canonical_bytes(fields: Mapping[str, Any]) -> bytes:
    """The bytes a row's hash covers: sorted-key JSON, datetimes as UTC ISO 8601.

    Args:
        fields: The row's audited fields (never its id or hashes).

    Returns:
        UTF-8 JSON with sorted keys and no insignificant whitespace.
    """
    normalised = {key: _canonical_value(value) for key, value in fields.items()}
    return json.dumps(normalised, sort_keys=True, separators=(",", ":"),
                      ensure_ascii=False, allow_nan=False).encode()


def link_hash(prev_hash: str, fields: Mapping[str, Any]) -> str:
    """The ``row_hash`` of a row whose predecessor's hash is ``prev_hash``."""
    return hashlib.sha256(prev_hash.encode() + b"\n" + canonical_bytes(fields)).hexdigest()


CHAIN_LOCK_KEY = 0x5C1A_0D17
"""PostgreSQL advisory-lock key that serialises appends to an audit chain."""


def lock_chain(session: Session) -> None:
    """Serialise appends to the chain until ``session``'s transaction ends.

    Two transactions appending at once would both link to the same predecessor. SQLite
    already runs one writer at a time (every transaction is ``BEGIN IMMEDIATE``); on
    PostgreSQL a transaction-scoped advisory lock does the same for the audit rows only.
    """
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": CHAIN_LOCK_KEY})


def row_fields(row: Any, fields: Sequence[str]) -> dict[str, Any]:
    """The named attributes of an audit row: what its hash covers."""
    return {name: getattr(row, name) for name in fields}


def append_linked(session: Session, row: Any, fields: Sequence[str]) -> None:
    """Link a new audit row to the newest row of its table's chain, then add and flush it.

    Args:
        session: The session of the change being audited (the row commits with it).
        row: A new mapped audit row with ``id``, ``prev_hash`` and ``row_hash`` attributes.
        fields: The attributes its hash covers (all but id and the hashes).
    """
    model = type(row)
    lock_chain(session)
    session.flush()  # earlier rows of this transaction are part of the chain too
    previous = session.scalar(sa.select(model.row_hash).order_by(model.id.desc()).limit(1))
    row.prev_hash = previous or GENESIS
    row.row_hash = link_hash(row.prev_hash, row_fields(row, fields))
    session.add(row)
    session.flush()


def verify_table(session: Session, model: Any, fields: Sequence[str]) -> ChainReport:
    """Recompute the hash chain of audit table ``model``, oldest row first (streamed)."""
    rows = session.scalars(sa.select(model).order_by(model.id).execution_options(
        yield_per=1000))
    return verify_chain(ChainRow(row.id, row.prev_hash, row.row_hash, row_fields(row, fields))
                        for row in rows)


@dataclass(frozen=True)
class ChainRow:
    """One audit row as the verifier sees it.

    Attributes:
        row_id: The row's primary key (only for the report).
        prev_hash: The stored link to the previous row (None: the row was never chained).
        row_hash: The stored hash of this row.
        fields: The audited fields, as :func:`link_hash` was given them.
    """

    row_id: int
    prev_hash: str | None
    row_hash: str | None
    fields: Mapping[str, Any]


@dataclass
class ChainReport:
    """The result of :func:`verify_chain`.

    Attributes:
        rows: Rows checked.
        head: The last row's stored hash (:data:`GENESIS` for an empty log).
        breaks: ``(row id, reason)`` for every row that fails, oldest first.
    """

    rows: int = 0
    head: str = GENESIS
    breaks: list[tuple[int, str]] = field(default_factory=list)

    @property
    def intact(self) -> bool:
        """True when every row's hash and link check out."""
        return not self.breaks

    def summary(self, log_name: str) -> str:
        """One line (plus one per break) for the verify commands."""
        if self.intact:
            return f"{log_name} intact: {self.rows} rows, head {self.head}"
        lines = [f"{log_name} BROKEN: {len(self.breaks)} of {self.rows} rows fail"]
        lines += [f"  row {row_id}: {reason}" for row_id, reason in self.breaks]
        return "\n".join(lines)


def verify_chain(rows: Iterable[ChainRow]) -> ChainReport:
    """Recompute the chain over ``rows`` (oldest first) and report every row that fails.

    Args:
        rows: The whole log in id order.

    Returns:
        The report; ``intact`` is False when any row was changed, removed or reordered.
    """
    report = ChainReport()
    expected_prev = GENESIS
    for row in rows:
        report.rows += 1
        if row.prev_hash is None or row.row_hash is None:
            report.breaks.append((row.row_id, "not chained (no hash)"))
        else:
            if row.prev_hash != expected_prev:
                report.breaks.append(
                    (row.row_id, "link broken: a row before it was removed, added or reordered"))
            elif link_hash(row.prev_hash, row.fields) != row.row_hash:
                report.breaks.append((row.row_id, "content changed after it was written"))
        expected_prev = row.row_hash or expected_prev
        report.head = row.row_hash or report.head
    return report


def seal_existing_rows(connection: Connection, table: str, columns: Sequence[str]) -> int:
    """Chain the rows an audit table held before it had hashes (for migrations only).

    The append-only trigger that refuses UPDATE is lifted for the statement and put back
    exactly as it was. Migration history runs this: never change what it does.

    Args:
        connection: The migration's connection (inside its transaction).
        table: ``audit_log``.
        columns: The audited columns, as the table's ``CHAINED_FIELDS`` name them.

    Returns:
        How many rows were sealed.
    """
    from skinstation.core.sqlbase import append_only_lifted

    audit = sa.table(table, sa.column("id", sa.Integer()),
                     sa.column("occurred_at", sa.DateTime()), sa.column("detail", sa.JSON()),
                     *(sa.column(name) for name in columns
                       if name not in ("occurred_at", "detail")),
                     sa.column("prev_hash", sa.String()), sa.column("row_hash", sa.String()))
    rows = connection.execute(sa.select(audit).order_by(audit.c.id)).mappings().all()
    if not rows:
        return 0
    with append_only_lifted(connection, table, "update"):
        previous = GENESIS
        for row in rows:
            row_hash = link_hash(previous, {name: row[name] for name in columns})
            connection.execute(sa.update(audit).where(audit.c.id == row["id"]).values(
                prev_hash=previous, row_hash=row_hash))
            previous = row_hash
    return len(rows)
