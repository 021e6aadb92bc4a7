"""``AuditedStore``: the database, clock and audit helpers shared by the station's stores."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session as DbSession

from skinstation.core.timeutil import Clock, utc_now
from skinstation.storage.audit import AuditAction, query_audit_log, record_audit
from skinstation.storage.database import Database
from skinstation.storage.models import AuditEvent


class AuditedStore:
    """A store on one database that writes and reads the audit log.

    Args:
        database: The open database (from :func:`~skinstation.storage.init_database`).
        clock: Source of "now" (aware datetimes); tests inject a fake.
        store_patient_names: Allow keeping patient names; off by default, in which case
            giving a name is refused rather than silently dropped.
    """

    def __init__(
        self,
        database: Database,
        *,
        clock: Clock = utc_now,
        store_patient_names: bool = False,
    ) -> None:
        self.database = database
        self.clock = clock
        self.store_patient_names = store_patient_names
        self.station_id = database.settings.station_id

    # -- audit -----------------------------------------------------------------------------

    def audit(
        self,
        actor_id: int | None,
        action: AuditAction | str,
        *,
        entity_type: str | None = None,
        entity_id: int | str | None = None,
        detail: dict[str, Any] | None = None,
    ) -> AuditEvent:
        """Append one audit row in its own transaction (for events outside this store)."""
        with self.database.transaction() as session:
            return self._audit(session, actor_id, action, entity_type, entity_id, detail)

    def audit_log(
        self,
        *,
        actor_id: int,
        by_operator_id: int | None = None,
        action: AuditAction | str | None = None,
        entity_type: str | None = None,
        entity_id: int | str | None = None,
        since: datetime | None = None,
        limit: int = 1000,
    ) -> list[AuditEvent]:
        """Return audit rows matching every given filter, oldest first (itself audited).

        Args:
            actor_id: Who is reading the log.
            by_operator_id: Only rows of things this operator did.
            action: Only this action.
            entity_type: Only rows about this kind of thing (``"capture"``...).
            entity_id: Only rows about this id.
            since: Only rows at or after this time.
            limit: At most this many rows.
        """
        filters = {
            "actor_id": by_operator_id,
            "action": action,
            "entity_type": entity_type,
            "entity_id": entity_id,
            "since": since,
        }
        with self.database.transaction() as session:
            rows = query_audit_log(session, limit=limit, **filters)
            detail = {k: str(v) for k, v in filters.items() if v is not None}
            self._audit(session, actor_id, AuditAction.AUDIT_LOG_VIEWED, None, None, detail)
            return rows

    def _audit(
        self,
        session: DbSession,
        actor_id: int | None,
        action: AuditAction | str,
        entity_type: str | None,
        entity_id: int | str | None,
        detail: dict[str, Any] | None = None,
    ) -> AuditEvent:
        return record_audit(
            session,
            at=self.clock(),
            station_id=self.station_id,
            actor_id=actor_id,
            action=action,
            entity_type=entity_type,
            entity_id=entity_id,
            detail=detail,
        )
