"""Routes for people: login/logout and the dermatologist's review queue."""

from __future__ import annotations

from fastapi import APIRouter, Response

from skinstation.engine import accounts, review
from skinstation.engine.api.deps import Account, Credentials, Db
from skinstation.engine.api.schemas import (
    LoginRequest,
    LoginResponse,
    QueueItemOut,
    ReviewRequest,
)
from skinstation.protocol.messages import ReviewRecord

router = APIRouter(tags=["review"])

AUTH_ERRORS = {401: {"description": "not logged in"}, 403: {"description": "wrong role"}}


@router.post("/auth/login", response_model=LoginResponse,
             responses={401: {"description": "wrong username or password"},
                        423: {"description": "account locked"}})
def login(body: LoginRequest, db: Db) -> LoginResponse:
    """Log in with an engine account; returns a bearer token."""
    result = accounts.login(db, body.username, body.password)
    return LoginResponse(token=result.token, expires_at=result.expires_at,
                         username=result.principal.username, role=result.principal.role.value)


@router.post("/auth/logout", status_code=204, responses=AUTH_ERRORS)
def logout(_account: Account, credentials: Credentials, db: Db) -> Response:
    """End this login."""
    assert credentials is not None
    accounts.logout(db, credentials.credentials)
    return Response(status_code=204)


@router.get("/review/queue", response_model=list[QueueItemOut], responses=AUTH_ERRORS)
def queue(account: Account, db: Db, limit: int = 200) -> list[QueueItemOut]:
    """Unreviewed cases: indeterminate, suspected cancer and referrals first."""
    return [QueueItemOut(**item.__dict__)
            for item in review.review_queue(db, account, limit=min(limit, 1000))]


@router.get("/review/captures/{capture_id}", responses=AUTH_ERRORS)
def details(capture_id: int, account: Account, db: Db) -> dict:
    """A case: capture, predictions, original label, reviews and final label (audited)."""
    return review.capture_details(db, account, capture_id)


@router.get("/review/captures/{capture_id}/image", response_class=Response,
            responses=AUTH_ERRORS)
def image(capture_id: int, account: Account, db: Db) -> Response:
    """A case's image bytes (audited)."""
    data, media_type = review.capture_image(db, account, capture_id)
    return Response(content=data, media_type=media_type,
                    headers={"Cache-Control": "no-store"})


@router.post("/review/captures/{capture_id}", response_model=ReviewRecord, status_code=201,
             responses={**AUTH_ERRORS, 422: {"description": "bad code or nothing to confirm"}})
def submit(capture_id: int, body: ReviewRequest, account: Account, db: Db) -> ReviewRecord:
    """Confirm the original label or correct it; the review becomes the final label."""
    record = review.submit_review(db, account, capture_id, body.action, body.code, body.note)
    return ReviewRecord(**record.__dict__)
