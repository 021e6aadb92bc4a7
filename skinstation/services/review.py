"""The review room's service functions: agree or correct, outcomes, undo (Qt-free).

A dermatologist reviews a queued capture with one of two distinct actions:

* **agree**: the model's top class (of the capture's latest prediction) becomes the review;
* **correct**: they choose another diagnosis class (:meth:`ModelManager.class_codes
  <skinstation.services.models.ModelManager.class_codes>`, the model file's taxonomy) or an
  outcome that is no class (:data:`~skinstation.storage.labels.REVIEW_OUTCOMES`: uncertain,
  biopsy requested / pending, SCC, other with its free text).

The stored review records which action it was. Outcomes that are no class never become a
training label (they are not uploaded). A "biopsy pending" case stays in the review queue; the
biopsy result is a later review that replaces it. The dermatologist may undo their own last
review of this login session while it cannot have reached the engine.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from skinstation.auth import Session, can_review
from skinstation.services.station import StationService
from skinstation.storage import Label, LabelRuleError
from skinstation.storage.labels import REVIEW_OUTCOMES
from skinstation.storage.models import ReviewAction
from skinstation.storage.reviews import ReviewRecords, ReviewSyncedError, StoredReview

__all__ = [
    "ReviewAction",
    "ReviewChoices",
    "ReviewSyncedError",
    "StoredReview",
    "model_top_class",
    "review_choices",
    "review_synced",
    "submit_review",
    "undo_review",
]


@dataclass(frozen=True)
class ReviewChoices:
    """What "Correct to…" offers: the model's diagnosis classes, then the other outcomes."""

    classes: tuple[str, ...]
    outcomes: tuple[str, ...]

    @property
    def codes(self) -> tuple[str, ...]:
        """Every code a correction may name."""
        return self.classes + self.outcomes


def review_choices(service: StationService) -> ReviewChoices:
    """The classes of the model file's taxonomy, and the outcomes that are not classes."""
    classes = tuple(service.models.class_codes())
    return ReviewChoices(classes, tuple(code for code in REVIEW_OUTCOMES if code not in classes))


def model_top_class(prediction: Mapping[str, Any] | None) -> str | None:
    """The most probable class of a stored prediction (``None`` without probabilities)."""
    probabilities = (prediction or {}).get("class_probabilities") or {}
    if not probabilities:
        return None
    return str(max(probabilities, key=lambda code: probabilities[code]))


def _records(service: StationService) -> ReviewRecords:
    return ReviewRecords(service.database, clock=service.clock)


def submit_review(service: StationService, session: Session, capture_id: int,
                  action: ReviewAction | str, code: str | None = None, *,
                  note: str | None = None, other_text: str | None = None) -> StoredReview:
    """Store a dermatologist's review of a capture (it becomes the final label).

    Args:
        service: The station service.
        session: The dermatologist's session.
        capture_id: The capture reviewed.
        action: ``agree`` (with the model's top class) or ``correct``.
        code: For ``correct``: a class or an outcome, other than the model's top class. For
            ``agree``: ``None`` or the model's top class.
        note: The dermatologist's note.
        other_text: What the ``other`` outcome is (required for it).

    Raises:
        PermissionDeniedError: If the session may not review.
        ValueError: If the choice does not fit the action, or the code is unknown.
    """
    service.auth.require(session, can_review)
    chosen = ReviewAction(action)
    top = model_top_class(service.store.latest_prediction(capture_id))
    if chosen is ReviewAction.AGREE:
        if top is None:
            raise ValueError(f"capture {capture_id} has no model class to agree with")
        if code not in (None, top):
            raise ValueError(f"agreeing means the model's class {top!r}, not {code!r}")
        code = top
    else:
        choices = review_choices(service)
        if code is None:
            raise ValueError("a correction needs the diagnosis or outcome chosen")
        if code not in choices.codes:
            raise ValueError(f"unknown diagnosis code {code!r}; use one of "
                             f"{', '.join(choices.codes)}")
        if code == top:
            raise ValueError(f"{code!r} is the model's own class: agree instead of correcting")
    return _records(service).add(capture_id, code, action=chosen,
                                 author_id=session.operator_id, note=note,
                                 other_text=other_text)


def review_synced(service: StationService, session: Session, label_id: int) -> bool:
    """Whether the review may already be on the engine (then it cannot be undone here)."""
    service.auth.require(session, can_review)
    return _records(service).may_have_reached_engine(label_id)


def undo_review(service: StationService, session: Session, label_id: int) -> Label:
    """Undo the dermatologist's own review made in this session, before it is synced.

    The capture goes back to the review queue (its final label is the one before); the undo
    is audited (``review.withdrawn``).

    Raises:
        PermissionDeniedError: If the session may not review.
        LabelRuleError: If it is not their latest review of the capture, or was made before
            this session.
        ReviewSyncedError: If it may already be on the engine.
    """
    service.auth.require(session, can_review)
    records = _records(service)
    with service.database.transaction() as db:
        label = db.get(Label, label_id)
        made_at = None if label is None else label.created_at
    if made_at is not None and made_at < session.started_at:
        raise LabelRuleError(f"review {label_id} was made before this session; revise it "
                             "instead")
    return records.withdraw(label_id, actor_id=session.operator_id)
