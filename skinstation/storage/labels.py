"""Labelling rules: ORIGINAL vs FINAL labels, as in MONAI Label.

A capture's ORIGINAL label is the one the capturing operator gave; it is written once and
never overwritten. Dermatologist reviews are added as new rows; a review is revised by adding a
row that supersedes it. The FINAL label is the latest review, else the original.

The operator may give a note without a diagnosis: that is still the capture's original
(``operator``) row, with the empty code :data:`NO_DIAGNOSIS`. It is never a FINAL label.

A dermatologist's review may also give an outcome that is not a diagnosis class
(:data:`REVIEW_OUTCOMES`: uncertain, biopsy requested / pending, SCC, other). Such a review is
the FINAL label on the station (a later review replaces it, e.g. the biopsy result), but it is
never a training label: it is not uploaded to the engine (:func:`is_training_label`). A review
undone by its author (:class:`~skinstation.storage.models.ReviewDetail` ``withdrawn_at``) keeps
its row and is left out everywhere (:func:`withdrawn_reviews`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Select, select
from sqlalchemy.orm import Session

from skinstation.storage.errors import DuplicateError, LabelRuleError, NotFoundError
from skinstation.storage.models import Capture, Label, LabelKind, ReviewDetail, Role
from skinstation.storage.validation import (
    active_operator,
    get_or_raise,
    require_label_code,
    require_text,
)

NO_DIAGNOSIS = ""
"""The code of an operator's note given without a diagnosis."""

UNCERTAIN = "uncertain"
BIOPSY_PENDING = "biopsy_pending"
SCC = "scc"
OTHER = "other"
REVIEW_OUTCOMES: tuple[str, ...] = (UNCERTAIN, BIOPSY_PENDING, SCC, OTHER)
"""Review outcomes beside the model's diagnosis classes; never training labels (not uploaded).

``scc`` (squamous cell carcinoma) is a diagnosis the model was not trained on; ``other`` needs
its free text (:attr:`ReviewDetail.other_text`).
"""


def is_training_label(label: Label) -> bool:
    """Whether a label may reach the engine (and so, once confirmed there, train a model).

    Notes without a diagnosis and review outcomes that are not diagnosis classes
    (:data:`REVIEW_OUTCOMES`) stay on the station.
    """
    if not label.code:
        return False
    return label.kind != LabelKind.REVIEW or label.code not in REVIEW_OUTCOMES


def withdrawn_reviews() -> Select[Any]:
    """``SELECT label_id`` of the reviews undone by their author (left out of every query)."""
    return select(ReviewDetail.label_id).where(ReviewDetail.withdrawn_at.is_not(None))


@dataclass(frozen=True)
class LabelHistory:
    """Every label of one capture.

    Attributes:
        original: The operator's label, or ``None``.
        reviews: Dermatologist reviews, oldest first (revisions included, withdrawn ones not).
        details: How each review was given, by label id (reviews made with the review room's
            actions since migration 0009; absent for older ones and engine reviews).
        final: The latest review, else the original when it names a diagnosis, else ``None``.
    """

    original: Label | None
    reviews: tuple[Label, ...]
    details: Mapping[int, ReviewDetail] = field(default_factory=dict)

    @property
    def final(self) -> Label | None:
        """The label that counts: the latest review, else the original's diagnosis."""
        if self.reviews:
            return self.reviews[-1]
        return self.original if self.original is not None and self.original.code else None


def _note(note: str | None) -> str | None:
    return None if note is None else require_text(note, "note", 2000, multiline=True)


def add_operator_label(
    session: Session, capture_id: int, code: str | None, author_id: int, note: str | None,
    at: datetime,
) -> Label:
    """Add a capture's original label: a diagnosis code, a note, or both.

    Args:
        session: The open transaction.
        capture_id: The capture labelled.
        code: The operator's diagnosis, or ``None`` for a note without one (stored with the
            code :data:`NO_DIAGNOSIS`).
        author_id: The capturing operator.
        note: The operator's note (required when ``code`` is ``None``).
        at: When it was given.

    Raises:
        DuplicateError: If the capture already has one.
        ValueError: If neither a code nor a non-blank note is given, or either is invalid.
    """
    if code is None:
        if note is None or not note.strip():
            raise ValueError("an operator label needs a diagnosis code, a note, or both")
        code = NO_DIAGNOSIS
    else:
        code = require_label_code(code)
    active_operator(session, author_id)
    get_or_raise(session, Capture, capture_id)
    existing = session.scalar(
        select(Label.id).where(Label.capture_id == capture_id, Label.kind == LabelKind.OPERATOR)
    )
    if existing is not None:
        raise DuplicateError(
            f"capture {capture_id} already has its original label (label {existing}); "
            "it is never overwritten - a dermatologist review adds the correction"
        )
    label = Label(
        capture_id=capture_id,
        kind=LabelKind.OPERATOR.value,
        code=code,
        note=_note(note),
        author_id=author_id,
        created_at=at,
    )
    session.add(label)
    session.flush()
    return label


def add_review(
    session: Session, capture_id: int, code: str, author_id: int, note: str | None, at: datetime
) -> Label:
    """Add a dermatologist's review of a capture.

    Raises:
        LabelRuleError: If the author is not a dermatologist.
    """
    code = require_label_code(code)
    author = active_operator(session, author_id)
    if author.role != Role.DERMATOLOGIST:
        raise LabelRuleError(
            f"only a dermatologist can review a capture; {author.username!r} is {author.role}"
        )
    get_or_raise(session, Capture, capture_id)
    label = Label(
        capture_id=capture_id,
        kind=LabelKind.REVIEW.value,
        code=code,
        note=_note(note),
        author_id=author_id,
        created_at=at,
    )
    session.add(label)
    session.flush()
    return label


def revise_review(
    session: Session, review_id: int, code: str, author_id: int, note: str | None, at: datetime
) -> Label:
    """Revise a review by adding a row that supersedes it.

    Raises:
        NotFoundError: If ``review_id`` is not a review.
        LabelRuleError: If the author did not write that review, or it is not the latest one.
    """
    code = require_label_code(code)
    author = active_operator(session, author_id)
    review = session.get(Label, review_id)
    if review is None or review.kind != LabelKind.REVIEW:
        raise NotFoundError(f"review {review_id} does not exist")
    if review.author_id != author_id or author.role != Role.DERMATOLOGIST:
        raise LabelRuleError(f"only the dermatologist who wrote review {review_id} can revise it")
    latest = _latest_review_id(session, review.capture_id)
    if latest != review_id:
        raise LabelRuleError(
            f"review {review_id} has been superseded by review {latest}; revise the latest one"
        )
    label = Label(
        capture_id=review.capture_id,
        kind=LabelKind.REVIEW.value,
        code=code,
        note=_note(note),
        author_id=author_id,
        supersedes_id=review_id,
        created_at=at,
    )
    session.add(label)
    session.flush()
    return label


def _latest_review_id(session: Session, capture_id: int) -> int | None:
    return session.scalar(
        select(Label.id)
        .where(Label.capture_id == capture_id, Label.kind == LabelKind.REVIEW,
               Label.id.not_in(withdrawn_reviews()))
        .order_by(Label.id.desc())
        .limit(1)
    )


def label_history(session: Session, capture_id: int) -> LabelHistory:
    """Return the original and (not withdrawn) review labels of a capture, with their details."""
    rows = list(session.scalars(
        select(Label)
        .where(Label.capture_id == capture_id, Label.id.not_in(withdrawn_reviews()))
        .order_by(Label.id)
    ))
    original = next((r for r in rows if r.kind == LabelKind.OPERATOR), None)
    reviews = tuple(r for r in rows if r.kind == LabelKind.REVIEW)
    ids = [r.id for r in reviews]
    details = {d.label_id: d for d in session.scalars(
        select(ReviewDetail).where(ReviewDetail.label_id.in_(ids)))} if ids else {}
    return LabelHistory(original, reviews, details)
