"""What the sync client reads from and writes to the station database.

* :meth:`SyncRecords.upload_of` gathers one capture for upload: its row, visit, patient
  pseudonym (the name only when the station both stores and may send names), predictions,
  the station's own labels and the verified image bytes. Only training labels go (see
  :func:`~skinstation.storage.labels.is_training_label`): notes without a diagnosis, review
  outcomes that are not diagnosis classes (uncertain, biopsy pending, SCC, other) and reviews
  undone by their author stay on the station.
* :meth:`SyncRecords.record_engine_review` keeps a dermatologist review made on the engine as
  a review label of the capture, authored by a login-disabled mirror account
  ``@engine:<username>``, so the station's history and review queue show it as the final label.
  Receiving the same engine review twice keeps it once.
* :meth:`SyncRecords.get` / :meth:`SyncRecords.put`: small named values (cursors, the installed
  model's deployment) in ``sync_state``.

The engine's confirmation of an upload, with its ``capture.uploaded`` audit row, is written by
:meth:`skinstation.storage.outbox.Outbox.mark_confirmed` in one transaction.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session as DbSession

from skinstation.protocol.uploads import (
    CaptureMetadata,
    CapturePart,
    LabelPart,
    LesionPart,
    PatientPart,
    PredictionPart,
    SessionPart,
)
from skinstation.storage.audited_store import AuditedStore
from skinstation.storage.errors import NotFoundError
from skinstation.storage.labels import is_training_label, withdrawn_reviews
from skinstation.storage.models import (
    Capture,
    EngineReview,
    Label,
    LabelKind,
    Lesion,
    Operator,
    Patient,
    Prediction,
    Role,
    SyncState,
    Visit,
)
from skinstation.storage.validation import get_or_raise, require_label_code, require_text

ENGINE_REVIEWER_PREFIX = "@engine:"
UNUSABLE_PASSWORD_HASH = "!engine-reviewer-no-login"  # noqa: S105 - a marker, not a password
REVIEW_RECEIVED = "review.received"


@dataclass(frozen=True)
class CaptureUpload:
    """One capture as the engine receives it.

    Attributes:
        capture_id: Local capture id.
        document: The protocol's upload document (capture, session, patient, predictions,
            labels), validated as the engine will validate it.
        image: The image bytes, verified against the recorded sha256.
    """

    capture_id: int
    document: CaptureMetadata
    image: bytes

    @property
    def metadata(self) -> dict[str, Any]:
        """The document as the JSON object that is sent."""
        return self.document.wire()


@dataclass(frozen=True)
class ReceivedReview:
    """A review made by a dermatologist on the engine, as pulled by the station."""

    engine_review_id: int
    capture_uid: str
    code: str
    note: str | None
    reviewer_username: str
    reviewer_name: str
    reviewed_at: datetime
    supersedes_engine_review_id: int | None = None


class SyncRecords(AuditedStore):
    """The sync client's access to the station database (see the module docstring)."""

    # -- upload ----------------------------------------------------------------------------

    def upload_of(self, capture_id: int, *, include_patient_name: bool = False) -> CaptureUpload:
        """Gather a capture for upload.

        Args:
            capture_id: Local capture id.
            include_patient_name: Send the patient's name if the station stores one.

        Raises:
            NotFoundError: If the capture does not exist.
            pydantic.ValidationError: If the local record breaks the protocol (the engine
                would refuse it); a ``ValueError``.
            ImageMissingError: If its image file is gone.
            ImageIntegrityError: If its image file was altered.
        """
        with self.database.transaction() as session:
            capture = get_or_raise(session, Capture, capture_id)
            visit = get_or_raise(session, Visit, capture.visit_id)
            patient = get_or_raise(session, Patient, visit.patient_id)
            usernames = _usernames(session)
            predictions = session.scalars(
                select(Prediction)
                .where(Prediction.capture_id == capture_id)
                .order_by(Prediction.id)
            )
            received = select(EngineReview.label_id)
            labels = session.scalars(
                select(Label)
                .where(Label.capture_id == capture_id, Label.id.not_in(received),
                       Label.id.not_in(withdrawn_reviews()))
                .order_by(Label.id)
            )
            document = CaptureMetadata(
                capture=CapturePart(
                    uid=capture.uid,
                    band=capture.band,
                    body_site=capture.body_site,
                    device_id=capture.device_id,
                    operator=usernames.get(capture.operator_id, str(capture.operator_id)),
                    access_time=capture.access_time,
                    capture_time=capture.capture_time,
                    saved_at=capture.saved_at,
                    image_sha256=capture.image_sha256,
                    image_size=capture.image_size,
                    image_format=capture.image_format,
                    width=capture.width,
                    height=capture.height,
                    multispectral_group_id=capture.multispectral_group_id,
                    multispectral_index=capture.multispectral_index,
                ),
                session=SessionPart(
                    ref=visit.uid or str(visit.id),
                    operator=usernames.get(visit.operator_id, str(visit.operator_id)),
                    opened_at=visit.opened_at,
                    closed_at=visit.closed_at,
                ),
                patient=PatientPart(
                    pseudonym=patient.pseudonym,
                    name=patient.name if include_patient_name else None,
                ),
                predictions=[
                    PredictionPart(
                        model_version=p.model_version,
                        class_probabilities=p.class_probabilities,
                        group_probabilities=p.group_probabilities,
                        decision=p.decision,
                        referral=p.referral,
                        created_at=p.created_at,
                    )
                    for p in predictions
                ],
                labels=[
                    LabelPart(
                        kind=label.kind,
                        code=label.code,
                        note=label.note,
                        author=usernames.get(label.author_id, str(label.author_id)),
                        created_at=label.created_at,
                    )
                    # a note without a diagnosis stays at the station (the protocol's labels
                    # carry a code), and so does a review outcome that is no diagnosis class:
                    # the engine would take its code for a label to train on
                    for label in labels if is_training_label(label)
                ],
                lesion=_lesion_part(session, capture.lesion_id),
            )
        image = self.database.images.read(capture.image_ref, capture.image_sha256)
        return CaptureUpload(capture_id, document, image)

    # -- reviews from the engine -----------------------------------------------------------

    def last_engine_review_id(self) -> int:
        """The highest engine review id received (0 if none)."""
        with self.database.transaction() as session:
            return session.scalar(select(func.max(EngineReview.engine_review_id))) or 0

    def record_engine_review(self, review: ReceivedReview) -> Label | None:
        """Keep an engine review as the capture's newest review label.

        Returns:
            The new label, or ``None`` if this engine review was already received.

        Raises:
            NotFoundError: If no local capture has ``review.capture_uid``.
            ValueError: If the code or reviewer name is malformed.
        """
        code = require_label_code(review.code)
        username = require_text(review.reviewer_username, "reviewer_username", 64)
        with self.database.transaction() as session:
            known = session.scalar(
                select(EngineReview.id).where(
                    EngineReview.engine_review_id == review.engine_review_id
                )
            )
            if known is not None:
                return None
            capture = session.scalar(select(Capture).where(Capture.uid == review.capture_uid))
            if capture is None:
                raise NotFoundError(f"no capture with uid {review.capture_uid} on this station")
            author = self._mirror_account(session, username, review.reviewer_name)
            supersedes = None
            if review.supersedes_engine_review_id is not None:
                supersedes = session.scalar(
                    select(EngineReview.label_id).where(
                        EngineReview.engine_review_id == review.supersedes_engine_review_id
                    )
                )
            label = Label(
                capture_id=capture.id,
                kind=LabelKind.REVIEW.value,
                code=code,
                note=review.note,
                author_id=author.id,
                supersedes_id=supersedes,
                created_at=review.reviewed_at,
            )
            session.add(label)
            session.flush()
            session.add(
                EngineReview(
                    engine_review_id=review.engine_review_id,
                    capture_id=capture.id,
                    label_id=label.id,
                    reviewer=username,
                    reviewed_at=review.reviewed_at,
                    received_at=self.clock(),
                )
            )
            detail = {"engine_review_id": review.engine_review_id, "code": code,
                      "label_id": label.id, "reviewer": username}
            self._audit(session, None, REVIEW_RECEIVED, "capture", capture.id, detail)
            return label

    def _mirror_account(self, session: DbSession, username: str, display_name: str) -> Operator:
        name = f"{ENGINE_REVIEWER_PREFIX}{username}"[:64]
        operator = session.scalar(select(Operator).where(Operator.username == name))
        if operator is None:
            now = self.clock()
            operator = Operator(
                username=name,
                display_name=(display_name or username)[:200],
                role=Role.DERMATOLOGIST.value,
                password_hash=UNUSABLE_PASSWORD_HASH,
                disabled=True,
                failed_login_count=0,
                password_changed_at=now,
                created_at=now,
            )
            session.add(operator)
            session.flush()
        return operator

    # -- named values ----------------------------------------------------------------------

    def get(self, key: str) -> str | None:
        """Return a stored value (``None`` if never set)."""
        with self.database.transaction() as session:
            row = session.get(SyncState, key)
            return None if row is None else row.value

    def put(self, key: str, value: str) -> None:
        """Store a value under ``key`` (replacing the previous one)."""
        key = require_text(key, "key", 64)
        with self.database.transaction() as session:
            row = session.get(SyncState, key)
            if row is None:
                session.add(SyncState(key=key, value=value, updated_at=self.clock()))
            else:
                row.value, row.updated_at = value, self.clock()


def _lesion_part(session: DbSession, lesion_id: int | None) -> LesionPart | None:
    """The upload's lesion placement, or None for a capture of no lesion."""
    if lesion_id is None:
        return None
    lesion = get_or_raise(session, Lesion, lesion_id)
    return LesionPart(uid=lesion.uid, body_site=lesion.body_site, view=lesion.view,
                      side=lesion.side, x=lesion.x, y=lesion.y)


def _usernames(session: DbSession) -> dict[int, str]:
    return {row.id: row.username for row in session.execute(select(Operator.id, Operator.username))}
