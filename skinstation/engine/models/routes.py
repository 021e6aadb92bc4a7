"""Routes of the models domain: the current signed manifest and model files; admin rollback."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import FileResponse

from skinstation.engine.audit import service as audit
from skinstation.engine.deps import (
    ADMIN,
    ADMIN_ERRORS,
    STATION_AUTH_ERRORS,
    Account,
    AnyPrincipal,
    Db,
)
from skinstation.engine.errors import NotFoundError
from skinstation.engine.models import service as registry
from skinstation.engine.models.schemas import RollbackRequest, VersionOut
from skinstation.engine.stations.service import StationPrincipal
from skinstation.protocol.manifest import SignedManifest

admin_router = APIRouter(prefix="/admin", tags=["admin"])
station_router = APIRouter(tags=["stations"])


@admin_router.get("/models", response_model=list[VersionOut], responses=ADMIN_ERRORS)
def list_models(account: Account, db: Db) -> list[VersionOut]:
    """Every model version with metrics, fingerprint, parent and who decided on it."""
    account.require(ADMIN)
    return registry.list_versions(db)


@admin_router.post("/models/rollback", response_model=SignedManifest,
                   responses={**ADMIN_ERRORS, 404: {"description": "no such model version"},
                              422: {"description": "nothing to roll back to, or the version "
                                                   "is not a promoted one"}})
def rollback(body: RollbackRequest, account: Account, db: Db) -> SignedManifest:
    """Deploy an earlier promoted model again (needs the signing key on this node)."""
    account.require(ADMIN)
    return registry.rollback(db, actor=account.actor, to_version=body.to_version,
                             reason=body.reason)


@station_router.get("/models/current", response_model=SignedManifest,
            responses={404: {"description": "no model deployed yet"}, **STATION_AUTH_ERRORS})
def current_model(_caller: AnyPrincipal, db: Db) -> SignedManifest:
    """The signed manifest of the model stations should use."""
    signed = registry.current(db)
    if signed is None:
        raise NotFoundError("no model has been deployed yet")
    return signed


@station_router.get("/models/{version}/file", response_class=FileResponse,
            responses={200: {"description": "the .safetensors model file",
                             "content": {"application/octet-stream": {
                                 "schema": {"type": "string", "format": "binary"}}}},
                       404: {"description": "unknown or never deployed"}, **STATION_AUTH_ERRORS})
def model_file(version: str, caller: AnyPrincipal, db: Db) -> FileResponse:
    """Download a deployed model file (verify it against the signed manifest)."""
    path = registry.deployed_file(db, version)
    if isinstance(caller, StationPrincipal):
        with db.transaction() as session:
            audit.record(session, caller.actor, "model.downloaded", "model_version", version)
    return FileResponse(path, media_type="application/octet-stream",
                        filename=f"{version}.safetensors")
