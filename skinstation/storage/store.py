"""``StationStore``: the typed API the station UI, CLI and services call to keep data.

Every method runs in its own transaction and every change writes its audit row in that same
transaction. Reads of patient data that the UI shows take an ``actor_id`` and are audited.
Returned model objects are detached snapshots: read their columns, do not follow relations.

The store checks data rules (an active author, an open visit, one original label per capture,
reviews by dermatologists) but not who may press which button: that is
:mod:`skinstation.auth.permissions`, applied by the layer above.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime

import numpy as np
from sqlalchemy import select
from sqlalchemy.orm import Session as DbSession

from skinstation.core.images import encode_image
from skinstation.core.pseudonyms import check_pseudonym
from skinstation.storage import labels as label_rules
from skinstation.storage import queries
from skinstation.storage.audit import AuditAction
from skinstation.storage.captures import CaptureDetails, insert_capture
from skinstation.storage.errors import (
    DuplicateError,
    PatientNameNotAllowedError,
)
from skinstation.storage.models import (
    Capture,
    Label,
    Patient,
    Prediction,
    Visit,
)
from skinstation.storage.predictions import new_prediction
from skinstation.storage.queries import CaptureSummary, ReviewState
from skinstation.storage.validation import (
    active_operator,
    get_or_raise,
    require_text,
)
from skinstation.storage.visits import VisitStore


class StationStore(VisitStore):
    """Patients, visits, captures, predictions, labels and the audit log of one station.

    Args:
        database: The open database (from :func:`~skinstation.storage.init_database`).
        clock: Source of "now" (aware datetimes); tests inject a fake.
        store_patient_names: Allow keeping patient names; off by default, in which case
            giving a name is refused rather than silently dropped.

    Visits (opening, closing by hand or automatically, numbers) come from
    :class:`~skinstation.storage.visits.VisitStore`.
    """

    # -- patients ----------------------------------------------------------------------------

    def create_patient(self, pseudonym: str, *, actor_id: int, name: str | None = None) -> Patient:
        """Register a patient under a pseudonymous id.

        Raises:
            PatientNameNotAllowedError: If ``name`` is given and names are not stored.
            DuplicateError: If the pseudonym is taken.
            PseudonymError: If it is no pseudonym (a name, a date of birth, spaces, too
                long, not the station's pattern: see :mod:`skinstation.core.pseudonyms`).
        """
        pseudonym = check_pseudonym(pseudonym, self.database.settings.pseudonym_pattern)
        if name is not None and not self.store_patient_names:
            raise PatientNameNotAllowedError(
                "this station does not store patient names; register the patient by "
                "pseudonymous id only"
            )
        with self.database.transaction() as session:
            active_operator(session, actor_id)
            if session.scalar(select(Patient.id).where(Patient.pseudonym == pseudonym)):
                raise DuplicateError(f"patient {pseudonym!r} already exists")
            patient = Patient(
                pseudonym=pseudonym,
                name=None if name is None else require_text(name, "name", 200),
                created_by_id=actor_id,
                created_at=self.clock(),
            )
            session.add(patient)
            session.flush()
            self._audit(session, actor_id, AuditAction.PATIENT_CREATED, "patient", patient.id)
            return patient

    def find_patient(self, pseudonym: str, *, actor_id: int) -> Patient | None:
        """Look a patient up by pseudonym (audited, also when not found).

        Raises:
            PseudonymError: If it is no pseudonym (nothing is looked up or audited).
        """
        pseudonym = check_pseudonym(pseudonym, self.database.settings.pseudonym_pattern)
        with self.database.transaction() as session:
            patient = session.scalar(select(Patient).where(Patient.pseudonym == pseudonym))
            entity_id = None if patient is None else patient.id
            detail = {"found": patient is not None}
            self._audit(session, actor_id, AuditAction.PATIENT_VIEWED, "patient", entity_id, detail)
            return patient

    # -- captures --------------------------------------------------------------------------

    def save_capture(
        self,
        visit_id: int,
        image: bytes | np.ndarray,
        *,
        band: str,
        body_site: str,
        device_id: str,
        operator_id: int,
        access_time: datetime,
        capture_time: datetime,
        multispectral_group_id: str | None = None,
        multispectral_index: int | None = None,
        lesion_id: int | None = None,
        field_of_view_mm: float | None = None,
    ) -> Capture:
        """Keep one captured image: file first (atomic, fsynced), then row + outbox + audit.

        Args:
            visit_id: The open visit it belongs to. A visit closed automatically passes the
                capture on to the visit that replaced it; a stale one is closed and replaced
                first (see :mod:`skinstation.storage.visits`): the capture's ``visit_id``
                says where it went.
            image: Encoded bytes (kept unchanged) or an RGB/gray pixel array (kept as PNG).
            band: Illumination band, e.g. ``"white"`` or ``"nir_850"``.
            body_site: Where on the body.
            device_id: Camera/illuminator identifier.
            operator_id: Who captured it.
            access_time: When the operator accessed the patient's record for this capture.
            capture_time: When the frame was taken.
            multispectral_group_id: Shared id of the band images of one multispectral shot.
            multispectral_index: Position of this band in that shot (give both or neither).
            lesion_id: The lesion it shows (one of the visit's patient), or None.
            field_of_view_mm: The width the image shows in mm (the dermatoscope's field of
                view), or None when not known: stored as ``mm_per_pixel`` = it / the stored
                image's width in pixels (None stays None).

        Returns:
            The saved capture.

        Raises:
            InvalidImageError: If the image cannot be kept.
            VisitClosedError: If the visit was closed by hand.
            DuplicateError: If the multispectral slot is already taken.
            ValueError: If the lesion is not one of the visit's patient, or the field of view
                is not a positive number (nothing is stored).
        """
        details = CaptureDetails.checked(
            band=band,
            body_site=body_site,
            device_id=device_id,
            operator_id=operator_id,
            access_time=access_time,
            capture_time=capture_time,
            multispectral_group_id=multispectral_group_id,
            multispectral_index=multispectral_index,
            lesion_id=lesion_id,
            field_of_view_mm=field_of_view_mm,
        )
        encoded = encode_image(image)
        with self.database.transaction() as session:
            active_operator(session, operator_id)
            visit = self._capture_visit(session, visit_id, operator_id)
            capture = insert_capture(
                session,
                self.database.images,
                visit.id,
                encoded,
                details,
                station_id=self.station_id,
                now=self.clock(),
            )
            detail: dict[str, object] = {"sha256": encoded.sha256, "band": details.band}
            if lesion_id is not None:
                detail["lesion_id"] = lesion_id
            self._audit(
                session, operator_id, AuditAction.CAPTURE_SAVED, "capture", capture.id, detail
            )
            return capture

    def get_capture(self, capture_id: int, *, actor_id: int) -> Capture:
        """Return a capture's record (audited)."""
        with self.database.transaction() as session:
            capture = get_or_raise(session, Capture, capture_id)
            self._audit(session, actor_id, AuditAction.CAPTURE_VIEWED, "capture", capture_id)
            return capture

    def read_image(self, capture_id: int, *, actor_id: int) -> bytes:
        """Return a capture's image bytes after checking their sha256 (audited).

        Raises:
            ImageMissingError: If the file is gone.
            ImageIntegrityError: If the file was altered.
        """
        with self.database.transaction() as session:
            capture = get_or_raise(session, Capture, capture_id)
            self._audit(session, actor_id, AuditAction.IMAGE_VIEWED, "capture", capture_id)
        return self.database.images.read(capture.image_ref, capture.image_sha256)

    def captures_of_visit(self, visit_id: int, *, actor_id: int) -> list[Capture]:
        """Return a visit's captures in capture order (audited)."""
        with self.database.transaction() as session:
            get_or_raise(session, Visit, visit_id)
            rows = session.scalars(
                select(Capture)
                .where(Capture.visit_id == visit_id)
                .order_by(Capture.capture_time, Capture.id)
            )
            captures = list(rows)
            detail = {"captures": len(captures)}
            self._audit(session, actor_id, AuditAction.CAPTURE_VIEWED, "visit", visit_id, detail)
            return captures

    # -- predictions and labels ------------------------------------------------------------

    def save_prediction(
        self,
        capture_id: int,
        *,
        model_version: str,
        class_probabilities: Mapping[str, float],
        group_probabilities: Mapping[str, float],
        decision: str,
        referral: bool | None = None,
    ) -> Prediction:
        """Record a model's output for a capture (a capture may have several; latest wins).

        Raises:
            ValueError: If a probability is outside [0, 1] or ``decision`` is neither a group
                of ``group_probabilities`` nor ``"indeterminate"``.
        """
        with self.database.transaction() as session:
            get_or_raise(session, Capture, capture_id)
            prediction = new_prediction(
                capture_id,
                model_version=model_version,
                class_probabilities=class_probabilities,
                group_probabilities=group_probabilities,
                decision=decision,
                referral=referral,
                now=self.clock(),
            )
            session.add(prediction)
            session.flush()
            detail = {"decision": decision, "model_version": model_version}
            self._audit(session, None, AuditAction.PREDICTION_SAVED, "capture", capture_id, detail)
            return prediction

    def latest_prediction(self, capture_id: int) -> dict[str, object] | None:
        """The capture's latest prediction as a plain dict (None if never classified)."""
        with self.database.transaction() as session:
            get_or_raise(session, Capture, capture_id)
            row = session.scalar(
                select(Prediction)
                .where(Prediction.capture_id == capture_id)
                .order_by(Prediction.created_at.desc(), Prediction.id.desc())
                .limit(1)
            )
            if row is None:
                return None
            return {
                "id": row.id, "model_version": row.model_version,
                "class_probabilities": dict(row.class_probabilities),
                "group_probabilities": dict(row.group_probabilities),
                "decision": row.decision, "referral": row.referral,
                "created_at": row.created_at,
            }

    def add_operator_label(
        self, capture_id: int, code: str | None, *, author_id: int, note: str | None = None
    ) -> Label:
        """Give a capture its original label (once; it is never overwritten).

        ``code`` is ``None`` for a note without a diagnosis (see :mod:`.labels`).
        """
        with self.database.transaction() as session:
            label = label_rules.add_operator_label(
                session, capture_id, code, author_id, note, self.clock()
            )
            return self._audited_label(session, AuditAction.LABEL_ADDED, label)

    def add_review(
        self, capture_id: int, code: str, *, author_id: int, note: str | None = None
    ) -> Label:
        """Add a dermatologist's review label (a new row; it becomes the final label)."""
        with self.database.transaction() as session:
            label = label_rules.add_review(session, capture_id, code, author_id, note, self.clock())
            return self._audited_label(session, AuditAction.REVIEW_ADDED, label)

    def revise_review(
        self, review_id: int, code: str, *, author_id: int, note: str | None = None
    ) -> Label:
        """Revise one's own latest review by adding a row that supersedes it."""
        with self.database.transaction() as session:
            label = label_rules.revise_review(
                session, review_id, code, author_id, note, self.clock()
            )
            return self._audited_label(session, AuditAction.REVIEW_REVISED, label)

    def _audited_label(self, session: DbSession, action: AuditAction, label: Label) -> Label:
        detail = {"label_id": label.id, "code": label.code, "supersedes": label.supersedes_id}
        self._audit(session, label.author_id, action, "capture", label.capture_id, detail)
        return label

    def labels(self, capture_id: int, *, actor_id: int) -> label_rules.LabelHistory:
        """Return a capture's original, reviews and final label (audited)."""
        with self.database.transaction() as session:
            get_or_raise(session, Capture, capture_id)
            history = label_rules.label_history(session, capture_id)
            self._audit(session, actor_id, AuditAction.LABELS_VIEWED, "capture", capture_id)
            return history

    # -- lists for the UI ------------------------------------------------------------------

    def history(
        self,
        *,
        actor_id: int,
        patient_id: int | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        decision: str | None = None,
        review_state: ReviewState | None = None,
        limit: int = 500,
    ) -> list[CaptureSummary]:
        """List captures, newest first, filtered (audited with the filters used).

        Args:
            actor_id: Who is looking.
            patient_id: Only this patient's captures.
            since: Captures taken at or after this time.
            until: Captures taken before this time.
            decision: Only captures whose latest prediction decided this.
            review_state: Only reviewed / unreviewed captures.
            limit: At most this many rows.
        """
        with self.database.transaction() as session:
            if patient_id is not None:
                get_or_raise(session, Patient, patient_id)
            rows = queries.history(
                session,
                patient_id=patient_id,
                since=since,
                until=until,
                decision=decision,
                review_state=review_state,
                limit=limit,
            )
            detail = {
                "patient_id": patient_id,
                "since": None if since is None else since.isoformat(),
                "until": None if until is None else until.isoformat(),
                "decision": decision,
                "review_state": None if review_state is None else str(review_state),
                "rows": len(rows),
            }
            self._audit(
                session, actor_id, AuditAction.HISTORY_VIEWED, "patient", patient_id, detail
            )
            return rows

    def review_queue(self, *, actor_id: int, limit: int = 500) -> list[CaptureSummary]:
        """Unreviewed predicted captures: suspected cancer and indeterminate first (audited)."""
        with self.database.transaction() as session:
            rows = queries.review_queue(session, limit=limit)
            self._audit(
                session, actor_id, AuditAction.REVIEW_QUEUE_VIEWED, None, None, {"rows": len(rows)}
            )
            return rows
