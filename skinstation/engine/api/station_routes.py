"""Routes stations call: enroll, upload captures, pull reviews and models, report events."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, File, Form, Response, UploadFile
from fastapi.responses import FileResponse
from pydantic import ValidationError

from skinstation.engine import audit, ingest, registry, review, stations
from skinstation.engine.api.deps import AnyPrincipal, Db, Station
from skinstation.engine.errors import InvalidError, NotFoundError, TooLargeError
from skinstation.engine.stations import StationPrincipal
from skinstation.protocol.manifest import SignedManifest
from skinstation.protocol.messages import (
    EnrollRequest,
    EnrollResponse,
    ReviewRecord,
    StationEvent,
    StationIdentity,
)
from skinstation.protocol.uploads import CaptureMetadata, CaptureReceipt

router = APIRouter(tags=["stations"])

AUTH_ERRORS = {401: {"description": "missing, wrong or revoked station token"}}


@router.post("/enroll", response_model=EnrollResponse, status_code=201,
             responses={401: {"description": "code unknown, used or expired"}})
def enroll(body: EnrollRequest, db: Db) -> EnrollResponse:
    """Exchange a one-time enrollment code for a station token and the engine's public key."""
    result = stations.enroll(db, body.code, body.station_ref)
    return EnrollResponse(**result.__dict__)


@router.get("/station/me", response_model=StationIdentity, responses=AUTH_ERRORS)
def me(station: Station) -> StationIdentity:
    """The calling station (checks the token)."""
    return StationIdentity(station_id=station.station_id, name=station.name,
                     station_ref=station.station_ref)


@router.post(
    "/captures", response_model=CaptureReceipt, status_code=201,
    responses={200: {"description": "already stored (idempotent retry)", "model": CaptureReceipt},
               409: {"description": "same uid already stored with other bytes"},
               413: {"description": "image or metadata over the size limit"},
               422: {"description": "corrupt or incomplete upload; nothing stored"},
               **AUTH_ERRORS},
)
def upload_capture(
    response: Response,
    station: Station,
    db: Db,
    metadata: Annotated[str, Form(description="capture metadata JSON")],
    image: Annotated[UploadFile, File(description="the image bytes")],
) -> CaptureReceipt:
    """Store one capture (image + metadata + predictions + labels), idempotently.

    201: stored now. 200: the engine already had it (same uid and sha256). The image must
    match the metadata's byte count and sha256 and decode; otherwise 422 and nothing stored.
    """
    limits = db.settings.engine
    if len(metadata.encode("utf-8")) > limits.max_metadata_bytes:
        raise TooLargeError(f"capture metadata larger than {limits.max_metadata_bytes} bytes")
    try:
        parsed = CaptureMetadata.model_validate_json(metadata)
    except ValidationError as error:
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}"
                             for e in error.errors()[:10])
        raise InvalidError(f"invalid capture metadata: {problems}; nothing stored") from None
    data = image.file.read(limits.max_image_bytes + 1)
    if len(data) > limits.max_image_bytes:
        raise TooLargeError(f"image larger than {limits.max_image_bytes} bytes; nothing stored")
    result = ingest.store_capture(db, station, parsed, data)
    if result.duplicate:
        response.status_code = 200
    return CaptureReceipt(**result.__dict__)


@router.get("/captures/{uid}", response_model=CaptureReceipt,
            responses={404: {"description": "not stored"}, **AUTH_ERRORS})
def capture_receipt(uid: str, station: Station, db: Db) -> CaptureReceipt:
    """Whether the engine holds one of the station's captures, and its sha256."""
    return CaptureReceipt(**ingest.capture_receipt(db, station, uid).__dict__)


@router.get("/reviews", response_model=list[ReviewRecord], responses=AUTH_ERRORS)
def pull_reviews(station: Station, db: Db, after: int = 0, limit: int = 500) -> list[ReviewRecord]:
    """Engine reviews of this station's captures with id > ``after``, oldest first."""
    rows = review.reviews_for_station(db, station, after_id=after, limit=min(limit, 1000))
    return [ReviewRecord(**r.__dict__) for r in rows]


@router.get("/models/current", response_model=SignedManifest,
            responses={404: {"description": "no model deployed yet"}, **AUTH_ERRORS})
def current_model(_caller: AnyPrincipal, db: Db) -> SignedManifest:
    """The signed manifest of the model stations should use."""
    signed = registry.current(db)
    if signed is None:
        raise NotFoundError("no model has been deployed yet")
    return SignedManifest(manifest=signed.manifest, signature=signed.signature)


@router.get("/models/{version}/file", response_class=FileResponse,
            responses={404: {"description": "unknown or never deployed"}, **AUTH_ERRORS})
def model_file(version: str, caller: AnyPrincipal, db: Db) -> FileResponse:
    """Download a deployed model file (verify it against the signed manifest)."""
    path = registry.deployed_file(db, version)
    if isinstance(caller, StationPrincipal):
        with db.transaction() as session:
            audit.record(session, caller.actor, "model.downloaded", "model_version", version)
    return FileResponse(path, media_type="application/octet-stream",
                        filename=f"{version}.safetensors")


@router.post("/station/events", status_code=204, responses=AUTH_ERRORS)
def station_event(body: StationEvent, station: Station, db: Db) -> Response:
    """Record something the station reports (e.g. a refused model) in the audit log."""
    with db.transaction() as session:
        audit.record(session, station.actor, f"station.{body.kind}", "model_version",
                     body.version, {"deployment": body.deployment, "detail": body.detail})
    return Response(status_code=204)
