"""The append-only audit log: the action vocabulary, writing rows, reading them back.

Audit rows are written in the same transaction as the change they describe, so a change
never commits without its audit row. Nothing here ever updates or deletes a row: the
session guard below refuses it in Python, and database triggers refuse it in SQL. Every row
is linked into a hash chain (:mod:`skinstation.core.auditchain`); :func:`verify_audit_log`
(``skinstation audit verify``) shows whether anyone changed the log behind the triggers.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import event, select
from sqlalchemy.orm import Session, sessionmaker

from skinstation.core.auditchain import ChainReport, append_linked, verify_table
from skinstation.storage.errors import AppendOnlyError
from skinstation.storage.models import AuditEvent, Label

CHAINED_FIELDS = ("occurred_at", "actor_id", "station_id", "action", "entity_type", "entity_id",
                  "detail")
"""What an audit row's hash covers (all but id and the hashes)."""


class AuditAction(StrEnum):
    """Every action the audit log records."""

    LOGIN_SUCCEEDED = "login.succeeded"
    LOGIN_FAILED = "login.failed"
    LOGIN_LOCKED_OUT = "login.locked_out"
    LOGOUT = "logout"
    OPERATOR_CREATED = "operator.created"
    OPERATOR_DISABLED = "operator.disabled"
    OPERATOR_ENABLED = "operator.enabled"
    OPERATOR_UNLOCKED = "operator.unlocked"
    PASSWORD_CHANGED = "password.changed"  # noqa: S105 - an action name, not a password
    PASSWORD_CHANGE_FAILED = "password.change_failed"  # noqa: S105 - an action name, not a password
    PASSWORD_RESET = "password.reset"  # noqa: S105 - an action name, not a password
    SESSION_EXPIRED = "session.expired"
    PATIENT_CREATED = "patient.created"
    PATIENT_VIEWED = "patient.viewed"
    PATIENT_LIST_VIEWED = "patient_list.viewed"
    DEMOGRAPHICS_CHANGED = "patient.demographics_changed"
    LESION_CREATED = "lesion.created"
    LESION_OVERVIEW_SET = "lesion.overview_set"
    LESION_CAPTURE_ASSIGNED = "lesion.capture_assigned"
    LESIONS_VIEWED = "lesions.viewed"
    LESION_TIMELINE_VIEWED = "lesion.timeline_viewed"
    VISIT_OPENED = "visit.opened"
    VISIT_CLOSED = "visit.closed"
    CAPTURE_SAVED = "capture.saved"
    CAPTURE_VIEWED = "capture.viewed"
    IMAGE_VIEWED = "image.viewed"
    CAPTURE_EXPORTED = "capture.exported"
    CAPTURE_SENT = "capture.sent"
    CAPTURE_REPORT = "capture.report"
    PREDICTION_SAVED = "prediction.saved"
    LABEL_ADDED = "label.added"
    REVIEW_ADDED = "review.added"
    REVIEW_REVISED = "review.revised"
    REVIEW_WITHDRAWN = "review.withdrawn"
    LABELS_VIEWED = "labels.viewed"
    HISTORY_VIEWED = "history.viewed"
    REVIEW_QUEUE_VIEWED = "review_queue.viewed"
    AUDIT_LOG_VIEWED = "audit_log.viewed"
    SETTINGS_CHANGED = "settings.changed"
    BACKUP_CREATED = "backup.created"
    BACKUP_RESTORED = "backup.restored"
    KEYS_ROTATED = "keys.rotated"


APPEND_ONLY_MODELS: tuple[type, ...] = (AuditEvent, Label)


def record_audit(
    session: Session,
    *,
    at: datetime,
    station_id: str,
    actor_id: int | None,
    action: AuditAction | str,
    entity_type: str | None = None,
    entity_id: int | str | None = None,
    detail: dict[str, Any] | None = None,
) -> AuditEvent:
    """Add an audit row to ``session`` (committed with the caller's transaction).

    Args:
        session: The session of the change being audited.
        at: When it happened.
        station_id: The station it happened on.
        actor_id: The operator who did it (``None`` for the system or an unknown user).
        action: What happened.
        entity_type: Kind of thing acted on (``"capture"``, ``"patient"``...).
        entity_id: Its id.
        detail: Extra JSON-serialisable facts. Never put secrets here.

    Returns:
        The new (flushed) row, linked to the previous one.
    """
    row = AuditEvent(
        occurred_at=at,
        actor_id=actor_id,
        station_id=station_id,
        action=str(action),
        entity_type=entity_type,
        entity_id=None if entity_id is None else str(entity_id),
        detail=dict(detail or {}),
    )
    append_linked(session, row, CHAINED_FIELDS)
    return row


def verify_audit_log(session: Session) -> ChainReport:
    """Recompute the station audit log's hash chain, oldest row first."""
    return verify_table(session, AuditEvent, CHAINED_FIELDS)


def query_audit_log(
    session: Session,
    *,
    actor_id: int | None = None,
    action: AuditAction | str | None = None,
    entity_type: str | None = None,
    entity_id: int | str | None = None,
    since: datetime | None = None,
    limit: int = 1000,
) -> list[AuditEvent]:
    """Return audit rows matching every given filter, oldest first."""
    stmt = select(AuditEvent).order_by(AuditEvent.id)
    if actor_id is not None:
        stmt = stmt.where(AuditEvent.actor_id == actor_id)
    if action is not None:
        stmt = stmt.where(AuditEvent.action == str(action))
    if entity_type is not None:
        stmt = stmt.where(AuditEvent.entity_type == entity_type)
    if entity_id is not None:
        stmt = stmt.where(AuditEvent.entity_id == str(entity_id))
    if since is not None:
        stmt = stmt.where(AuditEvent.occurred_at >= since)
    return list(session.scalars(stmt.limit(limit)))


def install_append_only_guard(sessions: sessionmaker[Session]) -> None:
    """Make sessions from ``sessions`` refuse to update or delete append-only rows."""
    event.listen(sessions, "before_flush", _refuse_append_only_changes)


def _refuse_append_only_changes(session: Session, _context: Any, _instances: Any) -> None:
    for instance in session.deleted:
        if isinstance(instance, APPEND_ONLY_MODELS):
            raise AppendOnlyError(f"{type(instance).__tablename__} rows may not be deleted")
    for instance in session.dirty:
        if isinstance(instance, APPEND_ONLY_MODELS) and session.is_modified(instance):
            raise AppendOnlyError(f"{type(instance).__tablename__} rows may not be changed")
