"""A case's lesion history: the other captures of the same station lesion, oldest first.

A station sends the uid of the lesion a capture shows (optional); the engine keeps it on the
capture (``captures.lesion_uid``, migration 0007). Lesion uids are matched within the station
that sent them only.
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import func, select, tuple_
from sqlalchemy.orm import Session

from skinstation.engine.ingest.models import Capture, CapturePrediction
from skinstation.engine.review.models import ORIGIN_ENGINE, Review
from skinstation.engine.review.schemas import LesionCaptureOut, LesionOut


def lesion_histories(session: Session, cases: Sequence[Capture]) -> dict[int, LesionOut]:
    """Case capture id → its lesion with the lesion's captures (cases of no lesion left out)."""
    keys = {(c.station_id, c.lesion_uid) for c in cases
            if c.station_id is not None and c.lesion_uid is not None}
    if not keys:
        return {}
    members = list(session.scalars(
        select(Capture).where(tuple_(Capture.station_id, Capture.lesion_uid).in_(sorted(keys)))
        .order_by(Capture.capture_time, Capture.id)))
    ids = [m.id for m in members]
    latest = {row[0]: row[1] for row in session.execute(
        select(CapturePrediction.capture_id, func.max(CapturePrediction.id))
        .where(CapturePrediction.capture_id.in_(ids)).group_by(CapturePrediction.capture_id))}
    predictions = {p.capture_id: p for p in session.scalars(
        select(CapturePrediction).where(CapturePrediction.id.in_(list(latest.values()))))}
    reviews: dict[int, str] = {}
    for review in session.scalars(select(Review).where(
            Review.capture_id.in_(ids), Review.origin == ORIGIN_ENGINE.value)
            .order_by(Review.id)):
        reviews[review.capture_id] = review.code
    result = {}
    for case in cases:
        if case.station_id is None or case.lesion_uid is None:
            continue
        same = [m for m in members
                if (m.station_id, m.lesion_uid) == (case.station_id, case.lesion_uid)]
        result[case.id] = LesionOut(
            uid=case.lesion_uid, body_site=case.lesion_body_site, view=case.lesion_view,
            side=case.lesion_side, x=case.lesion_x, y=case.lesion_y,
            captures=[_entry(m, predictions.get(m.id), reviews.get(m.id), m.id == case.id)
                      for m in same])
    return result


def _entry(capture: Capture, prediction: CapturePrediction | None, review: str | None,
           current: bool) -> LesionCaptureOut:
    return LesionCaptureOut(
        capture_id=capture.id, uid=capture.uid, capture_time=capture.capture_time,
        band=capture.band, decision=None if prediction is None else prediction.decision,
        referral=None if prediction is None else prediction.referral,
        final_label=review if review is not None else capture.original_label,
        review_status="confirmed" if review is not None else "unreviewed", current=current)
