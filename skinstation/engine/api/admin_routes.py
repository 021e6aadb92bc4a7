"""Administrator routes: enrollment codes, stations, accounts, training jobs, models, audit."""

from __future__ import annotations

from fastapi import APIRouter

from skinstation.engine import accounts, audit, jobs, registry, stations
from skinstation.engine.api.deps import Account, Db
from skinstation.engine.api.schemas import (
    AccountIn,
    AccountOut,
    AuditOut,
    CodeRequest,
    CodeResponse,
    JobOut,
    JobRequest,
    RollbackRequest,
    StationOut,
    VersionOut,
)
from skinstation.engine.schema import AccountRole
from skinstation.protocol.manifest import SignedManifest

router = APIRouter(prefix="/admin", tags=["admin"])

ADMIN_ERRORS = {401: {"description": "not logged in"}, 403: {"description": "not an admin"}}
ADMIN = AccountRole.ADMIN


@router.post("/enrollment-codes", response_model=CodeResponse, status_code=201,
             responses=ADMIN_ERRORS)
def create_code(body: CodeRequest, account: Account, db: Db) -> CodeResponse:
    """Issue a one-time enrollment code for a station."""
    account.require(ADMIN)
    issued = stations.create_enrollment_code(db, body.station_name, actor=account.actor)
    return CodeResponse(**issued.__dict__)


@router.get("/stations", response_model=list[StationOut], responses=ADMIN_ERRORS)
def list_stations(account: Account, db: Db) -> list[StationOut]:
    """Every enrolled station."""
    account.require(ADMIN)
    return [StationOut(**s.__dict__) for s in stations.list_stations(db)]


@router.post("/stations/{station_id}/revoke", response_model=StationOut, responses=ADMIN_ERRORS)
def revoke_station(station_id: int, account: Account, db: Db) -> StationOut:
    """Revoke a station's credential: its next request gets 401."""
    account.require(ADMIN)
    return StationOut(**stations.revoke(db, station_id, actor=account.actor).__dict__)


@router.post("/accounts", response_model=AccountOut, status_code=201, responses=ADMIN_ERRORS)
def create_account(body: AccountIn, account: Account, db: Db) -> AccountOut:
    """Create an administrator or dermatologist account."""
    account.require(ADMIN)
    created = accounts.create_account(db, body.username, body.password, AccountRole(body.role),
                                      display_name=body.display_name, actor=account.actor)
    return AccountOut(account_id=created.account_id, username=created.username,
                      display_name=created.display_name, role=created.role.value)


@router.post("/training-jobs", response_model=JobOut, status_code=201, responses=ADMIN_ERRORS)
def create_job(body: JobRequest, account: Account, db: Db) -> JobOut:
    """Queue a retraining job (run by a worker process, never by the API)."""
    account.require(ADMIN)
    params = body.model_dump(exclude_none=True)
    return JobOut(**jobs.create_job(db, actor=account.actor, params=params).__dict__)


@router.get("/training-jobs", response_model=list[JobOut], responses=ADMIN_ERRORS)
def list_jobs(account: Account, db: Db) -> list[JobOut]:
    """Training jobs, newest first."""
    account.require(ADMIN)
    return [JobOut(**j.__dict__) for j in jobs.list_jobs(db)]


@router.get("/training-jobs/{job_id}", response_model=JobOut, responses=ADMIN_ERRORS)
def get_job(job_id: int, account: Account, db: Db) -> JobOut:
    """One training job with its report."""
    account.require(ADMIN)
    return JobOut(**jobs.get_job(db, job_id).__dict__)


@router.get("/models", response_model=list[VersionOut], responses=ADMIN_ERRORS)
def list_models(account: Account, db: Db) -> list[VersionOut]:
    """Every model version with metrics, fingerprint, parent and who decided on it."""
    account.require(ADMIN)
    return [VersionOut(**v.__dict__) for v in registry.list_versions(db)]


@router.post("/models/rollback", response_model=SignedManifest, responses=ADMIN_ERRORS)
def rollback(body: RollbackRequest, account: Account, db: Db) -> SignedManifest:
    """Deploy an earlier promoted model again (needs the signing key on this node)."""
    account.require(ADMIN)
    signed = registry.rollback(db, actor=account.actor, to_version=body.to_version,
                               reason=body.reason)
    return SignedManifest(manifest=signed.manifest, signature=signed.signature)


@router.get("/audit", response_model=list[AuditOut], responses=ADMIN_ERRORS)
def audit_log(account: Account, db: Db, actor: str | None = None, action: str | None = None,
              after: int = 0, limit: int = 1000) -> list[AuditOut]:
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
