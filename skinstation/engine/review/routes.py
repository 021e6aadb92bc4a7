"""Routes of the review domain: the dermatologists' queue and reviews; the reviews stations pull."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Response

from skinstation.engine.deps import (
    ACCOUNT_AUTH_ERRORS,
    STATION_AUTH_ERRORS,
    Account,
    Cursor,
    Db,
    Limit,
    RowId,
    Station,
)
from skinstation.engine.review import service as review
from skinstation.engine.review.schemas import QueueItemOut, ReviewRequest
from skinstation.protocol.messages import (
    ReviewRecord,
)

station_router = APIRouter(tags=["stations"])
router = APIRouter(tags=["review"])

NO_CAPTURE: dict[int | str, dict[str, Any]] = {404: {"description": "no such capture"}}
IMAGE_TYPES = {f"image/{kind}": {"schema": {"type": "string", "format": "binary"}}
               for kind in ("jpeg", "png", "tiff", "bmp", "webp")}
"""The media types of stored capture images (the formats the engine accepts)."""


@station_router.get("/reviews", response_model=list[ReviewRecord], responses=STATION_AUTH_ERRORS)
def pull_reviews(station: Station, db: Db, after: Cursor = 0,
                 limit: Limit = 500) -> list[ReviewRecord]:
    """Engine reviews of this station's captures with id > ``after``, oldest first."""
    return review.reviews_for_station(db, station, after_id=after, limit=min(limit, 1000))


@router.get("/review/queue", response_model=list[QueueItemOut], responses=ACCOUNT_AUTH_ERRORS)
def queue(account: Account, db: Db, limit: Limit = 200) -> list[QueueItemOut]:
    """Unreviewed cases: indeterminate, suspected cancer and referrals first."""
    return review.review_queue(db, account, limit=min(limit, 1000))


@router.get("/review/captures/{capture_id}", responses={**ACCOUNT_AUTH_ERRORS, **NO_CAPTURE})
def details(capture_id: RowId, account: Account, db: Db) -> dict[str, Any]:
    """A case: capture, predictions, labels, reviews, final label, lesion history (audited)."""
    return review.capture_details(db, account, capture_id)


@router.get("/review/captures/{capture_id}/image", response_class=Response,
            responses={200: {"description": "the image file", "content": IMAGE_TYPES},
                       **ACCOUNT_AUTH_ERRORS, **NO_CAPTURE})
def image(capture_id: RowId, account: Account, db: Db) -> Response:
    """A case's image bytes (audited)."""
    data, media_type = review.capture_image(db, account, capture_id)
    return Response(content=data, media_type=media_type,
                    headers={"Cache-Control": "no-store"})


@router.post("/review/captures/{capture_id}", response_model=ReviewRecord, status_code=201,
             responses={**ACCOUNT_AUTH_ERRORS, **NO_CAPTURE,
                        422: {"description": "bad code or nothing to confirm"}})
def submit(capture_id: RowId, body: ReviewRequest, account: Account, db: Db) -> ReviewRecord:
    """Confirm the original label or correct it; the review becomes the final label."""
    return review.submit_review(db, account, capture_id, body.action, body.code, body.note)
