"""Routes of the ingest domain: a station uploads a capture, or asks for its receipt."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, File, Form, Response, UploadFile
from pydantic import ValidationError

from skinstation.engine.deps import (
    STATION_AUTH_ERRORS,
    Db,
    Limits,
    Station,
)
from skinstation.engine.errors import InvalidError, TooLargeError
from skinstation.engine.ingest import service as ingest
from skinstation.protocol.uploads import CaptureMetadata, CaptureReceipt

station_router = APIRouter(tags=["stations"])


@station_router.post(
    "/captures", response_model=CaptureReceipt, status_code=201,
    responses={200: {"description": "already stored (idempotent retry)", "model": CaptureReceipt},
               409: {"description": "same uid already stored with other bytes"},
               413: {"description": "image or metadata over the size limit"},
               422: {"description": "corrupt or incomplete upload; nothing stored"},
               **STATION_AUTH_ERRORS},
)
def upload_capture(
    response: Response,
    station: Station,
    db: Db,
    limits: Limits,
    metadata: Annotated[str, Form(description="capture metadata JSON")],
    image: Annotated[UploadFile, File(description="the image bytes")],
) -> CaptureReceipt:
    """Store one capture (image + metadata + predictions + labels), idempotently.

    201: stored now. 200: the engine already had it (same uid and sha256). The image must
    match the metadata's byte count and sha256, keep the engine's pixel limits (the same as
    provider classification's) and decode; otherwise 422 and nothing stored.
    """
    sizes = db.settings.engine
    if len(metadata.encode("utf-8")) > sizes.max_metadata_bytes:
        raise TooLargeError(f"capture metadata larger than {sizes.max_metadata_bytes} bytes")
    try:
        parsed = CaptureMetadata.model_validate_json(metadata)
    except ValidationError as error:
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}"
                             for e in error.errors()[:10])
        raise InvalidError(f"invalid capture metadata: {problems}; nothing stored") from None
    data = image.file.read(sizes.max_image_bytes + 1)
    if len(data) > sizes.max_image_bytes:
        raise TooLargeError(f"image larger than {sizes.max_image_bytes} bytes; nothing stored")
    result = ingest.store_capture(db, station, parsed, data, limits)
    if result.duplicate:
        response.status_code = 200
    return result


@station_router.get("/captures/{uid}", response_model=CaptureReceipt,
            responses={404: {"description": "not stored"}, **STATION_AUTH_ERRORS})
def capture_receipt(uid: str, station: Station, db: Db) -> CaptureReceipt:
    """Whether the engine holds one of the station's captures, and its sha256."""
    return ingest.capture_receipt(db, station, uid)
