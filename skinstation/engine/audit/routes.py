"""Routes of the audit domain: the admin audit log."""

from __future__ import annotations

from fastapi import APIRouter

from skinstation.engine.audit import service as audit
from skinstation.engine.audit.schemas import AuditOut
from skinstation.engine.deps import (
    ADMIN,
    ADMIN_ERRORS,
    Account,
    Cursor,
    Db,
    Limit,
)

admin_router = APIRouter(prefix="/admin", tags=["admin"])


@admin_router.get("/audit", response_model=list[AuditOut], responses=ADMIN_ERRORS)
def audit_log(account: Account, db: Db, actor: str | None = None, action: str | None = None,
              after: Cursor = 0, limit: Limit = 1000) -> list[AuditOut]:
    """Audit rows, oldest first (reading the log is itself audited)."""
    account.require(ADMIN)
    with db.transaction() as session:
        rows = audit.query(session, actor=actor, action=action, after_id=after,
                           limit=min(limit, 5000))
        result = [AuditOut(id=r.id, occurred_at=r.occurred_at, actor=r.actor, action=r.action,
                           entity_type=r.entity_type, entity_id=r.entity_id, detail=r.detail)
                  for r in rows]
        audit.record(session, account.actor, "audit_log.viewed", None, None,
                     {"actor": actor, "action": action, "rows": len(result)})
    return result
