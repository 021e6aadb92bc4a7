"""Routes of the stations domain: enrollment, identity and events; admin codes, revocation."""

from __future__ import annotations

from fastapi import APIRouter, Response

from skinstation.engine.audit import service as audit
from skinstation.engine.deps import (
    ADMIN,
    ADMIN_ERRORS,
    STATION_AUTH_ERRORS,
    Account,
    Db,
    RowId,
    Station,
)
from skinstation.engine.stations import service as stations
from skinstation.engine.stations.schemas import CodeRequest, CodeResponse, StationOut
from skinstation.protocol.messages import (
    EnrollRequest,
    EnrollResponse,
    StationEvent,
    StationIdentity,
)

admin_router = APIRouter(prefix="/admin", tags=["admin"])
station_router = APIRouter(tags=["stations"])


@admin_router.post("/enrollment-codes", response_model=CodeResponse, status_code=201,
             responses=ADMIN_ERRORS)
def create_code(body: CodeRequest, account: Account, db: Db) -> CodeResponse:
    """Issue a one-time enrollment code for a station."""
    account.require(ADMIN)
    return stations.create_enrollment_code(db, body.station_name, actor=account.actor)


@admin_router.get("/stations", response_model=list[StationOut], responses=ADMIN_ERRORS)
def list_stations(account: Account, db: Db) -> list[StationOut]:
    """Every enrolled station."""
    account.require(ADMIN)
    return stations.list_stations(db)


@admin_router.post("/stations/{station_id}/revoke", response_model=StationOut,
                   responses={**ADMIN_ERRORS, 404: {"description": "no such station"}})
def revoke_station(station_id: RowId, account: Account, db: Db) -> StationOut:
    """Revoke a station's credential: its next request gets 401."""
    account.require(ADMIN)
    return stations.revoke(db, station_id, actor=account.actor)


@station_router.post("/enroll", response_model=EnrollResponse, status_code=201,
             responses={401: {"description": "code unknown, used or expired"},
                        422: {"description": "a bad field, or the engine has no signing key"}})
def enroll(body: EnrollRequest, db: Db) -> EnrollResponse:
    """Exchange a one-time enrollment code for a station token and the engine's public key."""
    return stations.enroll(db, body.code, body.station_ref)


@station_router.get("/station/me", response_model=StationIdentity, responses=STATION_AUTH_ERRORS)
def me(station: Station) -> StationIdentity:
    """The calling station (checks the token)."""
    return StationIdentity(station_id=station.station_id, name=station.name,
                     station_ref=station.station_ref)


@station_router.post("/station/events", status_code=204, responses=STATION_AUTH_ERRORS)
def station_event(body: StationEvent, station: Station, db: Db) -> Response:
    """Record something the station reports (e.g. a refused model) in the audit log."""
    with db.transaction() as session:
        audit.record(session, station.actor, f"station.{body.kind}", "model_version",
                     body.version, {"deployment": body.deployment, "detail": body.detail})
    return Response(status_code=204)
