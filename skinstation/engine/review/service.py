"""Expert review on the engine: queue, case details, confirm/correct, reviews back to stations.

The ORIGINAL label (the station operator's) is never changed. Each review is a new row; the
latest review made on the engine by a dermatologist's account is the FINAL label. A review a
station sent with a capture is a *proposal* (a station token alone never makes a final label):
the case stays in the queue, showing the proposal, until a dermatologist here confirms or
corrects it. Reviews made on the engine flow back to the originating station, which pulls
those newer than the last one it received.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Select, case, func, literal, or_, select
from sqlalchemy.orm import Session

from skinstation.core.timeutil import utc_now
from skinstation.core.triage import URGENT_DECISIONS
from skinstation.engine.accounts.models import Account, AccountRole
from skinstation.engine.accounts.service import AccountPrincipal
from skinstation.engine.audit import service as audit
from skinstation.engine.database import EngineDatabase
from skinstation.engine.errors import InvalidError, NotFoundError
from skinstation.engine.ingest.models import (
    Capture,
    CapturePrediction,
    ExamSession,
    Patient,
)
from skinstation.engine.providers.models import Provider
from skinstation.engine.review.lesions import lesion_histories
from skinstation.engine.review.models import ORIGIN_ENGINE, ORIGIN_STATION, Review, ReviewAction
from skinstation.engine.review.schemas import QueueItemOut, StationReviewOut
from skinstation.engine.stations.models import Station
from skinstation.engine.stations.service import StationPrincipal
from skinstation.inference.taxonomy import load_taxonomy
from skinstation.protocol.messages import ReviewRecord


def _latest_prediction() -> Any:
    return (
        select(CapturePrediction.capture_id, func.max(CapturePrediction.id).label("pid"))
        .group_by(CapturePrediction.capture_id)
        .subquery("latest_prediction")
    )


def _queue_select() -> Select[Any]:
    latest = _latest_prediction()
    reviewed = select(Review.capture_id).where(Review.origin == ORIGIN_ENGINE.value)
    urgent = or_(CapturePrediction.decision.in_(URGENT_DECISIONS),
                 CapturePrediction.referral.is_(True))
    origin = func.coalesce(Station.name, literal("provider:") + Provider.name)
    return (
        select(Capture, origin, Patient.pseudonym,  # decrypted here: no SQL coalesce
               CapturePrediction, case((urgent, 1), else_=0).label("urgent"))
        .outerjoin(Station, Station.id == Capture.station_id)
        .outerjoin(ExamSession, ExamSession.id == Capture.session_id)
        .outerjoin(Patient, Patient.id == ExamSession.patient_id)
        .outerjoin(Provider, Provider.id == Capture.provider_id)
        .outerjoin(latest, latest.c.capture_id == Capture.id)
        .outerjoin(CapturePrediction, CapturePrediction.id == latest.c.pid)
        .where(Capture.id.not_in(reviewed))
        .order_by(case((urgent, 0), else_=1), Capture.capture_time, Capture.id)
    )


def _station_proposals(session: Session, capture_ids: list[int]) -> dict[int, StationReviewOut]:
    """The latest station-origin review of each of these captures."""
    proposals: dict[int, StationReviewOut] = {}
    if not capture_ids:
        return proposals
    for row in session.scalars(select(Review).where(
            Review.capture_id.in_(capture_ids), Review.origin == ORIGIN_STATION.value)
            .order_by(Review.id)):
        proposals[row.capture_id] = StationReviewOut(
            code=row.code, reviewer=row.reviewer, note=row.note, reviewed_at=row.created_at)
    return proposals


def review_queue(db: EngineDatabase, principal: AccountPrincipal,
                 limit: int = 200) -> list[QueueItemOut]:
    """Cases without an engine review: indeterminate, suspected cancer and referrals first.

    Each item's ``station`` names where it came from (a station's name, or
    ``provider:<name>``) and ``pseudonym`` the patient (a provider's pseudonymous end-user
    id); ``source`` is ``station`` or ``provider``. A case reviewed at the station stays
    here with that review as ``station_review`` (awaiting confirmation).
    """
    principal.require(AccountRole.DERMATOLOGIST, AccountRole.ADMIN)
    with db.transaction() as session:
        items = []
        rows = list(session.execute(_queue_select().limit(limit)))
        proposals = _station_proposals(session, [row[0].id for row in rows])
        lesions = lesion_histories(session, [row[0] for row in rows])
        for capture, station, pseudonym, prediction, urgent in rows:
            items.append(QueueItemOut(
                capture_id=capture.id, uid=capture.uid, station=station,
                pseudonym=capture.end_user_ref if pseudonym is None else pseudonym,
                band=capture.band, body_site=capture.body_site,
                capture_time=capture.capture_time,
                decision=None if prediction is None else prediction.decision,
                referral=None if prediction is None else prediction.referral,
                model_version=None if prediction is None else prediction.model_version,
                group_probabilities=(
                    {} if prediction is None else dict(prediction.group_probabilities)),
                original_label=capture.original_label, urgent=bool(urgent),
                source=capture.source, station_review=proposals.get(capture.id),
                lesion=lesions.get(capture.id)))
        audit.record(session, principal.actor, "review_queue.viewed", None, None,
                     {"rows": len(items)})
        return items


def capture_details(db: EngineDatabase, principal: AccountPrincipal,
                    capture_id: int) -> dict[str, Any]:
    """Everything a dermatologist needs about one case (audited).

    ``final_label`` is the latest engine review's code (the original label while there is
    none); ``review_status`` is ``confirmed`` (an engine review exists),
    ``awaiting_confirmation`` (only a station's review, shown as ``station_proposal``) or
    ``unreviewed``. ``lesion``: the station's lesion the case shows, with every capture of
    it from that station oldest first (this one marked ``current``), or None.
    """
    principal.require(AccountRole.DERMATOLOGIST, AccountRole.ADMIN)
    with db.transaction() as session:
        capture = _capture(session, capture_id)
        station = None if capture.station_id is None else session.get(Station, capture.station_id)
        exam = None if capture.session_id is None else session.get(ExamSession, capture.session_id)
        patient = session.get(Patient, exam.patient_id) if exam else None
        provider = (None if capture.provider_id is None
                    else session.get(Provider, capture.provider_id))
        predictions = session.scalars(select(CapturePrediction).where(
            CapturePrediction.capture_id == capture_id).order_by(CapturePrediction.id))
        reviews = _reviews(session, Review.capture_id == capture_id)
        final = [r for r in reviews if r.origin == ORIGIN_ENGINE.value]
        proposed = [r for r in reviews if r.origin == ORIGIN_STATION.value]
        status = ("confirmed" if final else "awaiting_confirmation" if proposed
                  else "unreviewed")
        audit.record(session, principal.actor, "capture.viewed", "capture", capture_id)
        lesion = lesion_histories(session, [capture]).get(capture.id)
        return {
            "capture_id": capture.id, "uid": capture.uid, "source": capture.source,
            "station": station.name if station else None,
            "provider": provider.name if provider else None,
            "pseudonym": patient.pseudonym if patient else capture.end_user_ref,
            "device_id": capture.device_id, "access_time": capture.access_time.isoformat(),
            "received_at": capture.received_at.isoformat(),
            "band": capture.band, "body_site": capture.body_site,
            "capture_time": capture.capture_time.isoformat(),
            "width": capture.width, "height": capture.height,
            "image_sha256": capture.image_sha256,
            "predictions": [{
                "model_version": p.model_version, "decision": p.decision,
                "referral": p.referral, "class_probabilities": p.class_probabilities,
                "group_probabilities": p.group_probabilities,
                "created_at": p.created_at.isoformat()} for p in predictions],
            "original_label": capture.original_label,
            "final_label": final[-1].code if final else capture.original_label,
            "review_status": status,
            "station_proposal": proposed[-1].code if proposed and not final else None,
            "reviews": [r.model_dump() | {"reviewed_at": r.reviewed_at.isoformat()}
                        for r in reviews],
            "lesion": None if lesion is None else lesion.model_dump(mode="json"),
        }


def capture_image(db: EngineDatabase, principal: AccountPrincipal,
                  capture_id: int) -> tuple[bytes, str]:
    """A case's image bytes (verified) and media type (audited)."""
    principal.require(AccountRole.DERMATOLOGIST, AccountRole.ADMIN)
    with db.transaction() as session:
        capture = _capture(session, capture_id)
        audit.record(session, principal.actor, "image.viewed", "capture", capture_id)
    media = {"jpg": "image/jpeg", "tif": "image/tiff"}.get(
        capture.image_format, f"image/{capture.image_format}")
    return db.images.read(capture.image_ref, capture.image_sha256), media


def submit_review(
    db: EngineDatabase,
    principal: AccountPrincipal,
    capture_id: int,
    action: ReviewAction | str,
    code: str | None = None,
    note: str | None = None,
) -> ReviewRecord:
    """Confirm the station's original label or correct it; the review becomes the final label.

    Args:
        db: The engine database.
        principal: A dermatologist.
        capture_id: The case.
        action: ``confirm`` (agree with the original label) or ``correct``.
        code: The diagnosis (fine class code) for ``correct``.
        note: Free-text remark.

    Raises:
        ForbiddenError: Not a dermatologist.
        NotFoundError: No such capture.
        InvalidError: Nothing to confirm, unknown code, or a "correction" to the same code.
    """
    principal.require(AccountRole.DERMATOLOGIST)
    action = ReviewAction(action)
    classes = load_taxonomy().classes
    if note is not None and len(note) > 2000:
        raise InvalidError("note must be at most 2000 characters")
    with db.transaction() as session:
        capture = _capture(session, capture_id)
        if action is ReviewAction.CONFIRM:
            if capture.original_label is None:
                raise InvalidError(
                    f"capture {capture_id} has no original label to confirm; use 'correct' "
                    "with a diagnosis code"
                )
            if code is not None and code != capture.original_label:
                raise InvalidError(
                    f"confirm keeps the original label {capture.original_label!r}; use "
                    f"'correct' to change it to {code!r}"
                )
            code = capture.original_label
        elif code is None or code == capture.original_label:
            raise InvalidError("'correct' needs a diagnosis code different from the original "
                               f"label {capture.original_label!r}")
        if code not in classes:
            raise InvalidError(f"unknown diagnosis code {code!r}; use one of {', '.join(classes)}")
        previous = session.scalar(select(func.max(Review.id)).where(
            Review.capture_id == capture_id))
        review = Review(capture_id=capture_id, origin=ORIGIN_ENGINE.value,
                        reviewer_id=principal.account_id, reviewer=principal.username,
                        action=action.value, code=code, note=note, supersedes_id=previous,
                        created_at=utc_now())
        session.add(review)
        session.flush()
        audit.record(session, principal.actor, f"review.{action.value}ed", "capture",
                     capture_id, {"review_id": review.id, "code": code,
                                  "original": capture.original_label, "supersedes": previous})
        return _reviews(session, Review.id == review.id)[0]


def reviews_for_station(db: EngineDatabase, station: StationPrincipal, after_id: int = 0,
                        limit: int = 500) -> list[ReviewRecord]:
    """Engine reviews of the station's captures newer than ``after_id``, oldest first."""
    with db.transaction() as session:
        rows = _reviews(session, Capture.station_id == station.station_id,
                        Review.origin == ORIGIN_ENGINE.value, Review.id > after_id,
                        limit=limit)
        if rows:
            audit.record(session, station.actor, "reviews.pulled", None, None,
                         {"after": after_id, "count": len(rows), "last": rows[-1].review_id})
        return rows


def _capture(session: Session, capture_id: int) -> Capture:
    capture = session.get(Capture, capture_id)
    if capture is None:
        raise NotFoundError(f"capture {capture_id} does not exist")
    return capture


def _reviews(session: Session, *conditions: Any, limit: int | None = None) -> list[ReviewRecord]:
    stmt = (
        select(Review, Capture.uid, Account.display_name)
        .join(Capture, Capture.id == Review.capture_id)
        .outerjoin(Account, Account.id == Review.reviewer_id)
        .where(*conditions)
        .order_by(Review.id)
    )
    if limit is not None:
        stmt = stmt.limit(limit)
    return [
        ReviewRecord(review_id=review.id, capture_id=review.capture_id, capture_uid=uid,
                     origin=review.origin, action=review.action, code=review.code,
                     note=review.note, reviewer=review.reviewer,
                     reviewer_name=name or review.reviewer, reviewed_at=review.created_at,
                     supersedes_id=review.supersedes_id)
        for review, uid, name in session.execute(stmt)
    ]
