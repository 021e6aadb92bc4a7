"""Read models for the UI: capture history and the dermatologist's review queue.

Each row joins a capture with its patient, its latest prediction, its original label and
its latest review (reviews undone by their author left out), computed in SQL so the same query
runs on SQLite and PostgreSQL.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import Select, and_, case, func, or_, select
from sqlalchemy.orm import Session, aliased

from skinstation.core.triage import URGENT_DECISIONS
from skinstation.storage.labels import BIOPSY_PENDING, withdrawn_reviews
from skinstation.storage.models import (
    Capture,
    Label,
    LabelKind,
    Patient,
    Prediction,
    Visit,
)
from skinstation.storage.validation import require_aware


class ReviewState(StrEnum):
    """Whether a dermatologist has reviewed a capture."""

    UNREVIEWED = "unreviewed"
    REVIEWED = "reviewed"


@dataclass(frozen=True)
class CaptureSummary:
    """One line of the history or the review queue."""

    capture_id: int
    capture_uid: str
    visit_id: int
    patient_id: int
    pseudonym: str
    band: str
    body_site: str
    capture_time: datetime
    operator_id: int
    multispectral_group_id: str | None
    multispectral_index: int | None
    decision: str | None
    referral: bool | None
    model_version: str | None
    original_label: str | None
    final_label: str | None
    review_state: ReviewState
    visit_number: int = 0
    """The visit's place among its patient's visits (1 for the first)."""
    note: str | None = None
    """The capturing operator's note."""
    review_note: str | None = None
    """The latest review's note."""


def _summary_select() -> tuple[Select[Any], Any]:
    """Return the summary query and the alias of each capture's latest review label."""
    latest_prediction = (
        select(Prediction.capture_id, func.max(Prediction.id).label("prediction_id"))
        .group_by(Prediction.capture_id)
        .subquery("latest_prediction")
    )
    latest_review = (
        select(Label.capture_id, func.max(Label.id).label("label_id"))
        .where(Label.kind == LabelKind.REVIEW.value, Label.id.not_in(withdrawn_reviews()))
        .group_by(Label.capture_id)
        .subquery("latest_review")
    )
    original = aliased(Label, name="original_label")
    review = aliased(Label, name="review_label")
    stmt = (
        select(
            Capture,
            Visit.patient_id,
            Visit.number.label("visit_number"),
            Patient.pseudonym,
            Prediction.id.label("prediction_id"),
            Prediction.decision,
            Prediction.referral,
            Prediction.model_version,
            original.code.label("original_code"),
            original.note.label("original_note"),
            review.code.label("review_code"),
            review.note.label("review_note"),
        )
        .join(Visit, Visit.id == Capture.visit_id)
        .join(Patient, Patient.id == Visit.patient_id)
        .outerjoin(latest_prediction, latest_prediction.c.capture_id == Capture.id)
        .outerjoin(Prediction, Prediction.id == latest_prediction.c.prediction_id)
        .outerjoin(
            original,
            and_(original.capture_id == Capture.id, original.kind == LabelKind.OPERATOR.value),
        )
        .outerjoin(latest_review, latest_review.c.capture_id == Capture.id)
        .outerjoin(review, review.id == latest_review.c.label_id)
    )
    return stmt, review


def _summaries(session: Session, stmt: Select[Any]) -> list[CaptureSummary]:
    result = []
    for row in session.execute(stmt):
        capture: Capture = row.Capture
        result.append(
            CaptureSummary(
                capture_id=capture.id,
                capture_uid=capture.uid,
                visit_id=capture.visit_id,
                patient_id=row.patient_id,
                pseudonym=row.pseudonym,
                band=capture.band,
                body_site=capture.body_site,
                capture_time=capture.capture_time,
                operator_id=capture.operator_id,
                multispectral_group_id=capture.multispectral_group_id,
                multispectral_index=capture.multispectral_index,
                decision=row.decision,
                referral=row.referral,
                model_version=row.model_version,
                original_label=row.original_code,
                final_label=row.review_code or row.original_code,
                review_state=(
                    ReviewState.REVIEWED if row.review_code is not None else ReviewState.UNREVIEWED
                ),
                visit_number=row.visit_number,
                note=row.original_note,
                review_note=row.review_note,
            )
        )
    return result


def history(
    session: Session,
    *,
    patient_id: int | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    decision: str | None = None,
    review_state: ReviewState | None = None,
    limit: int = 500,
) -> list[CaptureSummary]:
    """Return captures matching every given filter, newest capture first.

    Args:
        session: Open session.
        patient_id: Only this patient.
        since: Capture time at or after (aware datetime).
        until: Capture time strictly before (aware datetime).
        decision: Latest prediction's decision equals this.
        review_state: Reviewed or not.
        limit: Maximum number of rows.
    """
    stmt, review = _summary_select()
    if patient_id is not None:
        stmt = stmt.where(Visit.patient_id == patient_id)
    if since is not None:
        stmt = stmt.where(Capture.capture_time >= require_aware(since, "since"))
    if until is not None:
        stmt = stmt.where(Capture.capture_time < require_aware(until, "until"))
    if decision is not None:
        stmt = stmt.where(Prediction.decision == decision)
    if review_state is not None:
        reviewed = ReviewState(review_state) == ReviewState.REVIEWED
        stmt = stmt.where(review.id.is_not(None) if reviewed else review.id.is_(None))
    stmt = stmt.order_by(Capture.capture_time.desc(), Capture.id.desc()).limit(limit)
    return _summaries(session, stmt)


def review_queue(session: Session, *, limit: int = 500) -> list[CaptureSummary]:
    """Return predicted, unreviewed captures for the dermatologist, then those awaiting biopsy.

    Unreviewed captures whose latest prediction is ``indeterminate`` or ``skin_cancer`` or
    flagged for referral come first, then the other unreviewed ones, then the captures whose
    latest review is "biopsy requested / pending" (the biopsy result is a later review); within
    each tier the oldest capture comes first.
    """
    stmt, review = _summary_select()
    urgent = or_(
        Prediction.decision.in_(URGENT_DECISIONS),
        Prediction.referral.is_(True),
    )
    tier = case((review.id.is_not(None), 2), (urgent, 0), else_=1)
    stmt = (
        stmt.where(Prediction.id.is_not(None),
                   or_(review.id.is_(None), review.code == BIOPSY_PENDING))
        .order_by(tier, Capture.capture_time, Capture.id)
        .limit(limit)
    )
    return _summaries(session, stmt)
