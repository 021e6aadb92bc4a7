"""Reviews from the review room: agree or correct, outcomes beside the classes, and undo.

:class:`ReviewRecords` stores a dermatologist's review as a review label (the labelling rules of
:mod:`.labels`) together with its :class:`~skinstation.storage.models.ReviewDetail`: whether it
agreed with the model or corrected it, and the free text of an ``other`` outcome. The label
code is a diagnosis class or one of :data:`~skinstation.storage.labels.REVIEW_OUTCOMES`; the
latter stay on the station (never a training label, see :mod:`.sync_records`).

Undo (:meth:`ReviewRecords.withdraw`): the author may withdraw their latest review of a capture
as long as it cannot have reached the engine (:meth:`ReviewRecords.may_have_reached_engine`).
The label row stays (labels are append-only); its detail row records who withdrew it and when,
with an audit row, and the capture is back in the review queue.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session as DbSession

from skinstation.storage import labels as label_rules
from skinstation.storage.audit import AuditAction
from skinstation.storage.audited_store import AuditedStore
from skinstation.storage.errors import LabelRuleError, NotFoundError
from skinstation.storage.models import (
    Label,
    LabelKind,
    OutboxEntry,
    OutboxState,
    ReviewAction,
    ReviewDetail,
)
from skinstation.storage.validation import require_text

OTHER_TEXT_LENGTH = 200
"""The longest free text of an ``other`` outcome."""


class ReviewSyncedError(LabelRuleError):
    """The review may already be on the engine: it cannot be undone on the station."""


@dataclass(frozen=True)
class StoredReview:
    """A review as stored: its label row and its detail row."""

    label: Label
    detail: ReviewDetail


def _other_text(code: str, other_text: str | None) -> str | None:
    if code == label_rules.OTHER:
        if other_text is None or not other_text.strip():
            raise ValueError('the outcome "other" needs its free text')
        return require_text(other_text.strip(), "other_text", OTHER_TEXT_LENGTH)
    if other_text is not None and other_text.strip():
        raise ValueError('free text is only given with the outcome "other"')
    return None


class ReviewRecords(AuditedStore):
    """The review room's writes: reviews with their details, and undoing one."""

    def add(self, capture_id: int, code: str, *, action: ReviewAction | str, author_id: int,
            note: str | None = None, other_text: str | None = None) -> StoredReview:
        """Add a review label and its detail, audited (``review.added``).

        Args:
            capture_id: The capture reviewed.
            code: A diagnosis class, or one of :data:`~.labels.REVIEW_OUTCOMES`.
            action: Agree with the model or correct it.
            author_id: The dermatologist.
            note: Their note.
            other_text: What the ``other`` outcome is (required for it, refused otherwise).

        Raises:
            LabelRuleError: If the author is not a dermatologist.
            ValueError: If the action, code, note or free text is invalid.
        """
        chosen = ReviewAction(action)
        text = _other_text(code, other_text)
        with self.database.transaction() as session:
            label = label_rules.add_review(session, capture_id, code, author_id, note,
                                           self.clock())
            detail = ReviewDetail(label_id=label.id, action=chosen.value, other_text=text)
            session.add(detail)
            session.flush()
            audit = {"label_id": label.id, "code": label.code, "supersedes": None,
                     "action": chosen.value}
            self._audit(session, author_id, AuditAction.REVIEW_ADDED, "capture",
                        capture_id, audit)
            return StoredReview(label, detail)

    def may_have_reached_engine(self, label_id: int) -> bool:
        """Whether an upload of the label's capture may have carried this review.

        A capture's labels are read when its upload is built. The review may be on the engine
        if an upload is under way (``sent``) or an earlier attempt (whatever its outcome) ended
        after the review was made. A review made after the capture's upload was confirmed
        never leaves the station.

        Raises:
            NotFoundError: If the label does not exist.
        """
        with self.database.transaction() as session:
            label = session.get(Label, label_id)
            if label is None:
                raise NotFoundError(f"label {label_id} does not exist")
            return _may_have_reached_engine(session, label)

    def withdraw(self, label_id: int, *, actor_id: int) -> Label:
        """Undo one's own latest review of a capture before it is synced (audited).

        Returns:
            The withdrawn label (its row stays; the capture's final label is the one before).

        Raises:
            NotFoundError: If ``label_id`` is not a review.
            LabelRuleError: If ``actor_id`` did not write it, it was not made in the review
                room (no detail), it is already withdrawn or it is not the capture's latest
                review.
            ReviewSyncedError: If it may already be on the engine.
        """
        with self.database.transaction() as session:
            label = session.get(Label, label_id)
            if label is None or label.kind != LabelKind.REVIEW:
                raise NotFoundError(f"review {label_id} does not exist")
            if label.author_id != actor_id:
                raise LabelRuleError(f"only the dermatologist who wrote review {label_id} "
                                     "can undo it")
            detail = session.scalar(select(ReviewDetail).where(ReviewDetail.label_id == label_id))
            if detail is None:
                raise LabelRuleError(f"review {label_id} was not made in the review room; "
                                     "revise it instead")
            if detail.withdrawn_at is not None:
                raise LabelRuleError(f"review {label_id} is already undone")
            latest = session.scalar(
                select(Label.id)
                .where(Label.capture_id == label.capture_id, Label.kind == LabelKind.REVIEW,
                       Label.id.not_in(label_rules.withdrawn_reviews()))
                .order_by(Label.id.desc()).limit(1))
            if latest != label_id:
                raise LabelRuleError(f"review {label_id} has been followed by review {latest}; "
                                     "only the latest review can be undone")
            if _may_have_reached_engine(session, label):
                raise ReviewSyncedError(f"review {label_id} may already be on the engine; "
                                        "it cannot be undone on the station")
            detail.withdrawn_at, detail.withdrawn_by_id = self.clock(), actor_id
            session.flush()
            audit = {"label_id": label.id, "code": label.code, "action": detail.action}
            self._audit(session, actor_id, AuditAction.REVIEW_WITHDRAWN, "capture",
                        label.capture_id, audit)
            return label


def _may_have_reached_engine(session: DbSession, label: Label) -> bool:
    entry = session.scalar(select(OutboxEntry).where(OutboxEntry.capture_id == label.capture_id))
    if entry is None:
        return False
    if entry.state == OutboxState.SENT.value:
        return True
    return entry.sent_at is not None and label.created_at <= entry.updated_at
