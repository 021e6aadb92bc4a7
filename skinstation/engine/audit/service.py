"""The engine's append-only audit log: who saw or changed what, and when.

Rows are written in the transaction of the change they describe. Actors are strings:
``account:<username>``, ``station:<id>``, ``worker:<host>:<pid>`` or ``cli:<os user>``.
Secrets (tokens, codes, passwords) never go into a detail. Every row is linked into a hash
chain (:mod:`skinstation.core.auditchain`); :func:`verify` (``skinstation engine audit
--verify``) shows whether anyone changed the log behind the append-only triggers.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from skinstation.core.auditchain import ChainReport, append_linked, verify_table
from skinstation.core.timeutil import utc_now
from skinstation.engine.audit.models import AuditEvent

CHAINED_FIELDS = ("occurred_at", "actor", "action", "entity_type", "entity_id", "detail")
"""What an audit row's hash covers (all but id and the hashes)."""


def record(
    session: Session,
    actor: str,
    action: str,
    entity_type: str | None = None,
    entity_id: int | str | None = None,
    detail: dict[str, Any] | None = None,
    *,
    at: datetime | None = None,
) -> AuditEvent:
    """Add an audit row to ``session`` (committed with the caller's transaction).

    The row is linked to the newest row of the chain; on PostgreSQL appends are serialised
    until the caller's transaction ends (see :func:`skinstation.core.auditchain.lock_chain`).
    """
    row = AuditEvent(
        occurred_at=at or utc_now(),
        actor=actor[:128],
        action=action,
        entity_type=entity_type,
        entity_id=None if entity_id is None else str(entity_id),
        detail=dict(detail or {}),
    )
    append_linked(session, row, CHAINED_FIELDS)
    return row


def verify(session: Session) -> ChainReport:
    """Recompute the engine audit log's hash chain, oldest row first."""
    return verify_table(session, AuditEvent, CHAINED_FIELDS)


def query(
    session: Session,
    *,
    actor: str | None = None,
    action: str | None = None,
    entity_type: str | None = None,
    entity_id: int | str | None = None,
    after_id: int = 0,
    limit: int = 1000,
) -> list[AuditEvent]:
    """Return audit rows matching every given filter, oldest first."""
    stmt = select(AuditEvent).where(AuditEvent.id > after_id).order_by(AuditEvent.id)
    if actor is not None:
        stmt = stmt.where(AuditEvent.actor == actor)
    if action is not None:
        stmt = stmt.where(AuditEvent.action == action)
    if entity_type is not None:
        stmt = stmt.where(AuditEvent.entity_type == entity_type)
    if entity_id is not None:
        stmt = stmt.where(AuditEvent.entity_id == str(entity_id))
    return list(session.scalars(stmt.limit(limit)))
