"""Receiving captures from stations: verified, idempotent, all-or-nothing.

:func:`store_capture` checks the image against the metadata (byte count, sha256, its format
and pixel size from the header within the engine's :class:`ImageLimits`, then that it decodes)
before anything is written. The image is written and fsynced under a temporary name, the
patient, session, capture, predictions and labels are inserted in one transaction, and the
file is renamed into its content-addressed place just before that transaction commits; if the
rows fail, the temporary file is deleted, so a refused upload leaves no file behind. The same
capture sent again (a retry after a lost answer) is recognised by its uid and sha256 and stored
once; the same uid with other bytes is refused. Only a failed commit (after the rename) or a
crash leaves an orphan file, which :func:`sweep_orphan_images` removes.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from skinstation.core.files import TEMP_PREFIX
from skinstation.core.images import (
    EncodedImage,
    ImageLimits,
    InvalidImageError,
    StagedImage,
    UnreadableImageError,
    encode_image,
    inspect_header,
)
from skinstation.core.timeutil import utc_now
from skinstation.engine.audit import service as audit
from skinstation.engine.database import EngineDatabase
from skinstation.engine.errors import ConflictError, InvalidError, NotFoundError
from skinstation.engine.ingest.models import (
    Capture,
    CapturePrediction,
    CaptureSource,
    ExamSession,
    Patient,
)
from skinstation.engine.patients.models import ErasedCapture
from skinstation.engine.review.models import ORIGIN_STATION, Review, ReviewAction
from skinstation.engine.stations.service import StationPrincipal
from skinstation.protocol.uploads import CaptureMetadata, CaptureReceipt, LabelPart

NON_GROUP_DECISIONS = ("indeterminate", "not_assessable")
ORPHAN_GRACE = timedelta(minutes=10)


def verify_image(metadata: CaptureMetadata, image: bytes,
                 limits: ImageLimits | None = None) -> EncodedImage:
    """Check the received bytes are exactly the image the metadata describes.

    Args:
        metadata: The validated capture document.
        image: The received bytes.
        limits: Pixel sizes accepted (the engine's, as for provider classification); the
            header is checked against them before the pixels are decoded.

    Returns:
        The image, ready for the store.

    Raises:
        InvalidError: Byte count, sha256, format or pixel size differ or are outside
            ``limits``, or it does not decode.
    """
    declared = metadata.capture
    if len(image) != declared.image_size:
        raise InvalidError(
            f"capture {declared.uid}: received {len(image)} image bytes, metadata says "
            f"{declared.image_size}; upload incomplete or corrupt, nothing stored"
        )
    actual = hashlib.sha256(image).hexdigest()
    if actual != declared.image_sha256:
        raise InvalidError(
            f"capture {declared.uid}: image sha256 is {actual}, metadata says "
            f"{declared.image_sha256}; upload corrupt, nothing stored"
        )
    try:
        inspect_header(image, limits or ImageLimits())
    except UnreadableImageError as error:
        raise InvalidError(f"capture {declared.uid}: image bytes do not decode: {error}; "
                           "nothing stored") from None
    except InvalidImageError as error:
        raise InvalidError(f"capture {declared.uid}: {error}; nothing stored") from None
    try:
        encoded = encode_image(image)
    except InvalidImageError as error:
        raise InvalidError(f"capture {declared.uid}: {error}; nothing stored") from None
    if (encoded.extension, encoded.width, encoded.height) != (
        declared.image_format, declared.width, declared.height,
    ):
        raise InvalidError(
            f"capture {declared.uid}: image is {encoded.extension} {encoded.width}x"
            f"{encoded.height}, metadata says {declared.image_format} {declared.width}x"
            f"{declared.height}; nothing stored"
        )
    for prediction in metadata.predictions:
        allowed = set(prediction.group_probabilities) | set(NON_GROUP_DECISIONS)
        if prediction.decision not in allowed:
            raise InvalidError(
                f"capture {declared.uid}: prediction decision {prediction.decision!r} is not "
                f"one of {sorted(allowed)}; nothing stored"
            )
    operator_labels = [label for label in metadata.labels if label.kind == "operator"]
    if len(operator_labels) > 1:
        raise InvalidError(f"capture {declared.uid}: more than one original (operator) label")
    return encoded


def _existing(session: Session, uid: str) -> Capture | None:
    return session.scalar(select(Capture).where(Capture.uid == uid))


def _duplicate_or_conflict(existing: Capture, metadata: CaptureMetadata,
                           station: StationPrincipal) -> CaptureReceipt:
    if existing.station_id != station.station_id:
        raise ConflictError(f"capture uid {existing.uid} belongs to another station")
    if existing.image_sha256 != metadata.capture.image_sha256:
        raise ConflictError(
            f"capture {existing.uid} is already stored with image sha256 "
            f"{existing.image_sha256}; refusing different bytes {metadata.capture.image_sha256}"
        )
    return CaptureReceipt(capture_id=existing.id, uid=existing.uid,
                          image_sha256=existing.image_sha256, duplicate=True)


def store_capture(
    db: EngineDatabase, station: StationPrincipal, metadata: CaptureMetadata, image: bytes,
    limits: ImageLimits | None = None,
) -> CaptureReceipt:
    """Store one capture sent by ``station`` (idempotent by capture uid + sha256).

    Args:
        db: The engine database.
        station: The sending station.
        metadata: The validated capture document.
        image: The received image bytes.
        limits: Pixel sizes accepted (default: :class:`ImageLimits` defaults).

    Raises:
        InvalidError: The image does not match the metadata, or a patient name was sent to
            an engine that does not accept names. Nothing is stored.
        ConflictError: The uid is known with other bytes or from another station, or the
            capture was erased on the engine.
    """
    if metadata.patient.name is not None and not db.settings.engine.accept_patient_names:
        raise InvalidError(
            "this engine accepts pseudonyms only; the station sent a patient name "
            "(turn off sync.send_patient_names); nothing stored"
        )
    with db.transaction() as session:
        existing = _existing(session, metadata.capture.uid)
        if existing is not None:
            return _duplicate_or_conflict(existing, metadata, station)
        if session.scalar(select(ErasedCapture.id).where(
                ErasedCapture.uid == metadata.capture.uid)) is not None:
            raise ConflictError(f"capture {metadata.capture.uid} was erased on the engine; it "
                                "is not stored again")
    encoded = verify_image(metadata, image, limits)
    staged = db.images.stage(encoded)  # written and fsynced before any database lock
    try:
        with db.transaction() as session:
            capture = _insert(session, station, metadata, staged.ref)
            audit.record(session, station.actor, "capture.received", "capture", capture.id,
                         {"uid": capture.uid, "sha256": capture.image_sha256})
            session.flush()
            staged.publish()  # a rename: the rows are in, only the commit is left
            return CaptureReceipt(capture_id=capture.id, uid=capture.uid,
                                  image_sha256=capture.image_sha256, duplicate=False)
    except IntegrityError:
        # A concurrent retry of the same capture committed first.
        with db.transaction() as session:
            existing = _existing(session, metadata.capture.uid)
            if existing is None:
                raise
            return _duplicate_or_conflict(existing, metadata, station)
    finally:
        staged.discard()  # rows refused: the file never became visible


def _insert(session: Session, station: StationPrincipal, metadata: CaptureMetadata,
            image_ref: str) -> Capture:
    now = utc_now()
    patient_part, session_part, part = metadata.patient, metadata.session, metadata.capture
    patient = session.scalar(select(Patient).where(
        Patient.station_id == station.station_id, Patient.pseudonym == patient_part.pseudonym))
    if patient is None:
        patient = Patient(station_id=station.station_id, pseudonym=patient_part.pseudonym,
                          name=patient_part.name, created_at=now)
        session.add(patient)
        session.flush()
    exam = session.scalar(select(ExamSession).where(
        ExamSession.station_id == station.station_id, ExamSession.ref == session_part.ref))
    if exam is None:
        exam = ExamSession(station_id=station.station_id, ref=session_part.ref,
                           patient_id=patient.id, operator=session_part.operator,
                           opened_at=session_part.opened_at, closed_at=session_part.closed_at)
        session.add(exam)
        session.flush()
    elif exam.patient_id != patient.id:
        raise ConflictError(f"session {session_part.ref} belongs to another patient")
    elif session_part.closed_at is not None and exam.closed_at is None:
        exam.closed_at = session_part.closed_at
    original = next((label for label in metadata.labels if label.kind == "operator"), None)
    capture = Capture(
        uid=part.uid, source=CaptureSource.STATION.value, station_id=station.station_id,
        session_id=exam.id, band=part.band, body_site=part.body_site, device_id=part.device_id,
        operator=part.operator,
        image_ref=image_ref, image_sha256=part.image_sha256, image_size=part.image_size,
        image_format=part.image_format, width=part.width, height=part.height,
        access_time=part.access_time, capture_time=part.capture_time, saved_at=part.saved_at,
        received_at=now, multispectral_group_id=part.multispectral_group_id,
        multispectral_index=part.multispectral_index,
        original_label=None if original is None else original.code,
        original_label_author=None if original is None else original.author,
        original_label_note=None if original is None else original.note,
        **_lesion_columns(metadata),
    )
    session.add(capture)
    session.flush()
    for prediction in metadata.predictions:
        session.add(CapturePrediction(
            capture_id=capture.id, model_version=prediction.model_version,
            class_probabilities=dict(prediction.class_probabilities),
            group_probabilities=dict(prediction.group_probabilities),
            decision=prediction.decision, referral=prediction.referral,
            created_at=prediction.created_at))
    previous: Review | None = None
    for label in (item for item in metadata.labels if item.kind == "review"):
        previous = _station_review(session, capture, station, label, previous)
    session.flush()
    return capture


def _lesion_columns(metadata: CaptureMetadata) -> dict[str, Any]:
    """The capture's lesion columns (all None for a capture of no lesion)."""
    lesion = metadata.lesion
    if lesion is None:
        return {}
    return {"lesion_uid": lesion.uid, "lesion_body_site": lesion.body_site,
            "lesion_view": lesion.view, "lesion_side": lesion.side, "lesion_x": lesion.x,
            "lesion_y": lesion.y}


def _station_review(session: Session, capture: Capture, station: StationPrincipal,
                    label: LabelPart, previous: Review | None) -> Review:
    action = ReviewAction.CONFIRM if label.code == capture.original_label else ReviewAction.CORRECT
    # a proposal: a station token cannot make a final label (see ReviewOrigin)
    review = Review(capture_id=capture.id, origin=ORIGIN_STATION.value, reviewer_id=None,
                    reviewer=f"station:{station.name}/{label.author}"[:128], action=action.value,
                    code=label.code, note=label.note,
                    supersedes_id=None if previous is None else previous.id,
                    created_at=label.created_at)
    session.add(review)
    session.flush()
    return review


@dataclass(frozen=True)
class ProviderCase:
    """A provider's consented image with the engine's classification, ready to store.

    Attributes:
        uid: The classify request id (becomes the capture uid).
        provider_id: The provider.
        end_user_ref: The provider's pseudonymous end-user id (never a name).
        device_id: The provider's terminal / device id.
        body_site: Where on the body, as the provider says ("unspecified" if not).
        access_time: When the end user accessed the provider's service.
        capture_time: When the image was taken (the access time if unknown).
        received_at: When the engine received it (the upload time).
        model_version: Model that classified it.
        class_probabilities: Fine class → probability (empty when not assessable).
        group_probabilities: Group → probability.
        decision: The rule decision (or ``not_assessable``).
        referral: The safety referral flag.
    """

    uid: str
    provider_id: int
    end_user_ref: str
    device_id: str
    body_site: str
    access_time: datetime
    capture_time: datetime
    received_at: datetime
    model_version: str
    class_probabilities: dict[str, float]
    group_probabilities: dict[str, float]
    decision: str
    referral: bool


def store_provider_case(db: EngineDatabase, session: Session, case: ProviderCase,
                        image: EncodedImage, actor: str) -> tuple[Capture, bool]:
    """Store a provider's consented image as a capture with its prediction, for review.

    The image file is written and fsynced first, before this function's first statement (so,
    called first in a transaction, no database lock is held meanwhile), under a temporary name
    that is renamed into place once the rows are flushed; rows that fail here leave no file. The
    rows join the caller's transaction (one that then fails to commit leaves an orphan file for
    :func:`sweep_orphan_images`). The same image of the same end user from the same provider (a
    retry) is stored once.

    Returns:
        The capture, and whether it was already stored.
    """
    staged = db.images.stage(image)
    try:
        return _insert_provider_case(session, case, image, staged, actor)
    finally:
        staged.discard()


def _insert_provider_case(session: Session, case: ProviderCase, image: EncodedImage,
                          staged: StagedImage, actor: str) -> tuple[Capture, bool]:
    existing = session.scalar(select(Capture).where(
        Capture.provider_id == case.provider_id, Capture.end_user_ref == case.end_user_ref,
        Capture.image_sha256 == image.sha256).limit(1))
    if existing is not None:
        staged.publish()  # restores the file should it have gone missing
        return existing, True
    capture = Capture(
        uid=case.uid, source=CaptureSource.PROVIDER.value, station_id=None, session_id=None,
        provider_id=case.provider_id, end_user_ref=case.end_user_ref, band="white",
        body_site=case.body_site, device_id=case.device_id,
        operator=f"provider:{case.provider_id}", image_ref=staged.ref,
        image_sha256=image.sha256, image_size=len(image.data), image_format=image.extension,
        width=image.width, height=image.height, access_time=case.access_time,
        capture_time=case.capture_time, saved_at=case.received_at,
        received_at=case.received_at)
    session.add(capture)
    session.flush()
    session.add(CapturePrediction(
        capture_id=capture.id, model_version=case.model_version,
        class_probabilities=dict(case.class_probabilities),
        group_probabilities=dict(case.group_probabilities), decision=case.decision,
        referral=case.referral, created_at=case.received_at))
    audit.record(session, actor, "capture.received", "capture", capture.id,
                 {"uid": capture.uid, "sha256": capture.image_sha256, "source": "provider"})
    session.flush()
    staged.publish()
    return capture, False


def capture_receipt(db: EngineDatabase, station: StationPrincipal, uid: str) -> CaptureReceipt:
    """What the engine holds for one of the station's captures.

    Raises:
        NotFoundError: The engine has no such capture from this station.
    """
    with db.transaction() as session:
        capture = _existing(session, uid)
        if capture is None or capture.station_id != station.station_id:
            raise NotFoundError(f"capture {uid} is not stored on the engine")
        return CaptureReceipt(capture_id=capture.id, uid=capture.uid,
                              image_sha256=capture.image_sha256, duplicate=True)


def sweep_orphan_images(db: EngineDatabase, grace: timedelta = ORPHAN_GRACE) -> int:
    """Delete image files (and temporary files) no capture row names, older than ``grace``.

    Returns:
        How many files were deleted.
    """
    on_disk = list(db.images.files())
    with db.transaction() as session:
        referenced = set(session.scalars(select(Capture.image_ref)))
    cutoff = time.time() - grace.total_seconds()
    removed = 0
    for path in on_disk:
        ref = db.images.ref_of(path)
        if not path.name.startswith(TEMP_PREFIX) and ref in referenced:
            continue
        try:
            if path.stat().st_mtime > cutoff:
                continue
            path.unlink()
            removed += 1
        except FileNotFoundError:
            continue
    return removed
