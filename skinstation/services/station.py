"""The exam station's service functions: what the UI and the CLI demo call.

One :class:`StationService` per station process. It ties together operator access
(:mod:`skinstation.auth`), the labelled store (:mod:`skinstation.storage`), capture quality
(:mod:`skinstation.inference.quality`) and the on-device classifier (:mod:`.models`). Every call
that touches patient data takes the operator's :class:`~skinstation.auth.Session` and checks
its permission first; the store writes the audit rows.

Blocking work (classification, saving) is plain synchronous code here; the UI runs it in
worker threads.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy import select

from skinstation.auth import (
    AuthService,
    OperatorAccount,
    Role,
    Session,
    can_capture,
    can_change_station_settings,
    can_review,
    can_view_history,
)
from skinstation.camera import Frame, QualityReport, assess_quality
from skinstation.core.timeutil import Clock
from skinstation.inference.classifier import NOT_ASSESSABLE, Prediction
from skinstation.inference.heatmap import Explanation, explain
from skinstation.services.models import ModelInfo, ModelManager
from skinstation.services.settings_file import update_settings_file
from skinstation.settings import Settings
from skinstation.storage import (
    AuditAction,
    Capture,
    CaptureSummary,
    Database,
    LabelHistory,
    Operator,
    Patient,
    ReviewState,
    StationStore,
    Visit,
    init_database,
    utc_now,
)


class SyntheticFrameError(ValueError):
    """A drawn demonstration frame was offered as a patient image."""


@dataclass(frozen=True)
class Analysis:
    """Quality check and classification of one frame, before it is saved.

    Attributes:
        quality: The capture-quality report.
        prediction: The classifier's output (None if quality failed and was not overridden).
        seconds: Quality check + preprocessing + model + decision time.
    """

    quality: QualityReport
    prediction: Prediction | None
    seconds: float


@dataclass(frozen=True)
class SavedCapture:
    """A capture as stored: its row and (when classified) the stored prediction's id."""

    capture: Capture
    prediction_id: int | None


@dataclass(frozen=True)
class CaptureDetail:
    """Everything the result/history/review screens show about one capture."""

    capture: Capture
    pixels: np.ndarray
    prediction: dict[str, Any] | None
    labels: LabelHistory


class StationService:
    """Station operations behind permission checks.

    Args:
        settings: The station settings.
        database: An open database (``init_database(settings)`` if None).
        models: Model manager (one for ``settings`` if None).
        clock: Source of "now" (aware datetimes).
    """

    def __init__(self, settings: Settings, database: Database | None = None,
                 models: ModelManager | None = None, clock: Clock = utc_now) -> None:
        self.settings = settings
        self.database = database or init_database(settings)
        self.clock = clock
        self.store = StationStore(self.database, clock=clock,
                                  store_patient_names=settings.store_patient_names)
        self.auth = AuthService(self.database, settings=settings.auth, clock=clock)
        self.models = models or ModelManager(settings)

    # -- accounts -------------------------------------------------------------------------

    def needs_first_admin(self) -> bool:
        """True until the first administrator has been created."""
        return self.auth.needs_first_admin()

    def create_first_admin(self, username: str, display_name: str,
                           password: str) -> OperatorAccount:
        """First-run setup: create the administrator from explicit input."""
        return self.auth.create_first_admin(username, display_name, password)

    def login(self, username: str, password: str) -> Session:
        """Open an operator session (see :meth:`AuthService.login` for the errors)."""
        return self.auth.login(username, password)

    def logout(self, session: Session) -> None:
        """End a session."""
        self.auth.logout(session)

    def create_operator(self, admin: Session, username: str, display_name: str, role: Role,
                        password: str) -> OperatorAccount:
        """Admin: add an operator account."""
        return self.auth.create_operator(admin, username, display_name, role, password)

    def list_operators(self, admin: Session) -> list[OperatorAccount]:
        """Admin: every account, by username."""
        return self.auth.list_operators(admin)

    def disable_operator(self, admin: Session, username: str) -> OperatorAccount:
        """Admin: disable an account (not one's own, not the last active administrator)."""
        return self.auth.disable_operator(admin, username)

    def enable_operator(self, admin: Session, username: str) -> OperatorAccount:
        """Admin: re-enable a disabled account."""
        return self.auth.enable_operator(admin, username)

    def unlock_operator(self, admin: Session, username: str) -> OperatorAccount:
        """Admin: lift a lockout after too many wrong passwords at once."""
        return self.auth.unlock_operator(admin, username)

    def reset_password(self, admin: Session, username: str, temporary_password: str) -> None:
        """Admin: set a temporary password the operator must change at their next login."""
        self.auth.reset_password(admin, username, temporary_password)

    def change_password(self, session: Session, old_password: str, new_password: str) -> None:
        """Change one's own password (the current one is required)."""
        self.auth.change_password(session, old_password, new_password)

    def operator_names(self, session: Session) -> dict[int, str]:
        """Operator id → display name, to show who labelled or reviewed a capture."""
        self.auth.check(session)
        with self.database.transaction() as db:
            return {row.id: row.display_name for row in db.scalars(select(Operator))}

    # -- station settings -----------------------------------------------------------------

    def change_settings(self, admin: Session, changes: Mapping[str, Any],
                        config_file: Path | None = None) -> Settings:
        """Admin: apply setting changes and write them to the station's TOML file.

        Args:
            admin: An administrator's session.
            changes: Top-level fields, or section name → changed fields of that section
                (e.g. ``{"language": "ko", "camera": {"source": "simulator"}}``).
            config_file: TOML file to update (default ``<home>/settings.toml``).

        Returns:
            The new settings, now in use by this service.

        Raises:
            PermissionDeniedError: Unless the session is an administrator's.
            ValueError: On an unknown setting or a value of the wrong type.
        """
        self.auth.require(admin, can_change_station_settings)
        merged: dict[str, Any] = {}
        for key, value in changes.items():
            current = getattr(self.settings, key, None)
            if isinstance(value, Mapping) and dataclasses.is_dataclass(current):
                merged[key] = dataclasses.replace(current, **value)  # type: ignore[type-var]
            else:
                merged[key] = value
        updated = self.settings.replace(**merged)
        update_settings_file(config_file or self.settings.home / "settings.toml",
                             {k: dict(v) if isinstance(v, Mapping) else v
                              for k, v in changes.items()})
        self.settings = updated
        self.store.audit(admin.operator_id, AuditAction.SETTINGS_CHANGED,
                         entity_type="settings", entity_id=self.settings.station_id,
                         detail={"changes": json.loads(json.dumps(
                             {k: dict(v) if isinstance(v, Mapping) else v
                              for k, v in changes.items()}, default=str))})
        return updated

    # -- patients and visits ----------------------------------------------------------------

    def find_or_create_patient(self, session: Session, pseudonym: str,
                               name: str | None = None) -> Patient:
        """Find a patient by pseudonymous id, creating the record if it does not exist."""
        self.auth.require(session, can_capture)
        patient = self.store.find_patient(pseudonym, actor_id=session.operator_id)
        if patient is not None:
            return patient
        return self.store.create_patient(pseudonym, actor_id=session.operator_id, name=name)

    def create_patient(self, session: Session, pseudonym: str,
                       name: str | None = None) -> Patient:
        """Register a new patient (the UI asks the operator first: a typo is a new patient).

        Raises:
            DuplicateError: If the pseudonym is taken.
            PseudonymError: If it is no pseudonym (a name, a date of birth, spaces...).
        """
        self.auth.require(session, can_capture)
        return self.store.create_patient(pseudonym, actor_id=session.operator_id, name=name)

    def find_patient(self, session: Session, pseudonym: str) -> Patient | None:
        """Look a patient up by pseudonym without creating one (for history filters)."""
        self.auth.require(session, can_view_history)
        return self.store.find_patient(pseudonym, actor_id=session.operator_id)

    def start_visit(self, session: Session, patient_id: int) -> Visit:
        """Open a visit (exam session) for a patient."""
        self.auth.require(session, can_capture)
        return self.store.open_visit(patient_id, operator_id=session.operator_id)

    def close_visit(self, session: Session, visit_id: int) -> Visit:
        """Close a visit; no more captures can be added to it."""
        self.auth.require(session, can_capture)
        return self.store.close_visit(visit_id, operator_id=session.operator_id)

    def visit(self, session: Session, visit_id: int) -> Visit:
        """One visit (with its per-patient number), e.g. the one a capture was stored in."""
        self.auth.require(session, can_capture)
        return self.store.get_visit(visit_id)

    # -- quality and classification -------------------------------------------------------

    def model_info(self) -> ModelInfo:
        """The model in use (loads it on first call)."""
        return self.models.info()

    def check_quality(self, pixels: np.ndarray) -> QualityReport:
        """Run the capture-quality checks with the station's thresholds."""
        return assess_quality(pixels, self.settings.quality)

    def classify(self, pixels: np.ndarray) -> Prediction:
        """Classify one RGB frame with the model in use."""
        return self.models.classifier().classify(np.ascontiguousarray(pixels))

    def explain(self, pixels: np.ndarray, target_class: str | None = None) -> Explanation:
        """Grad-CAM heatmap of ``target_class`` (default: the top class) for one RGB frame."""
        return explain(self.models.classifier(), np.ascontiguousarray(pixels), target_class)

    def analyse(self, pixels: np.ndarray, classify_if_poor: bool = False) -> Analysis:
        """Quality-check a frame, then classify it if it passed (or if told to anyway)."""
        started = time.perf_counter()
        quality = self.check_quality(pixels)
        prediction = self.classify(pixels) if quality.passed or classify_if_poor else None
        return Analysis(quality, prediction, time.perf_counter() - started)

    # -- saving ---------------------------------------------------------------------------

    def save_capture(
        self, session: Session, visit_id: int, frame: Frame, *, band: str, body_site: str,
        access_time: dt.datetime, prediction: Prediction | None = None,
        multispectral_group_id: str | None = None, multispectral_index: int | None = None,
        lesion_id: int | None = None,
    ) -> SavedCapture:
        """Store a frame (lossless) with its labels, then its prediction.

        ``lesion_id``: the lesion the frame shows (one of the visit's patient), or None. The
        capture keeps the pixel size of ``camera.field_of_view_mm`` in force now (its
        ``mm_per_pixel``; None while the field of view is not set).

        Raises:
            SyntheticFrameError: For drawn demonstration frames (never patient images).
            ValueError: The lesion is not one of the visit's patient (nothing is stored).
        """
        self.auth.require(session, can_capture)
        if frame.synthetic:
            raise SyntheticFrameError(
                "This is a synthetic demonstration frame, not a patient image: it cannot be "
                "saved to a patient record. Choose a camera or a simulator image folder.")
        capture = self.store.save_capture(
            visit_id, np.ascontiguousarray(frame.pixels), band=band, body_site=body_site,
            device_id=frame.device_id, operator_id=session.operator_id, access_time=access_time,
            capture_time=dt.datetime.fromtimestamp(frame.timestamp, dt.UTC),
            multispectral_group_id=multispectral_group_id,
            multispectral_index=multispectral_index, lesion_id=lesion_id,
            field_of_view_mm=self.settings.camera.field_of_view_mm,
        )
        prediction_id = None
        if prediction is not None:
            prediction_id = self.store.save_prediction(
                capture.id, model_version=prediction.model_version,
                class_probabilities=prediction.class_probs,
                group_probabilities=prediction.group_probs,
                decision=prediction.decision,
                referral=None if prediction.decision == NOT_ASSESSABLE else prediction.referral,
            ).id
        return SavedCapture(capture, prediction_id)

    def save_multispectral(
        self, session: Session, visit_id: int, frames: Sequence[tuple[str, Frame]], *,
        body_site: str, access_time: dt.datetime, classify_band: str = "white",
        prediction: Prediction | None = None, lesion_id: int | None = None,
    ) -> list[SavedCapture]:
        """Store one frame per band as one multispectral group.

        Nothing is classified here: ``prediction`` (the one shown to the operator for the
        ``classify_band`` frame, or None) is stored with that frame as it is.
        """
        group = uuid.uuid4().hex
        saved = []
        for index, (band, frame) in enumerate(frames):
            saved.append(self.save_capture(
                session, visit_id, frame, band=band, body_site=body_site,
                access_time=access_time,
                prediction=prediction if band == classify_band else None,
                multispectral_group_id=group, multispectral_index=index,
                lesion_id=lesion_id))
        return saved

    # -- labels and review ----------------------------------------------------------------

    def _check_code(self, code: str) -> str:
        classes = self.models.classifier().taxonomy.classes
        if code not in classes:
            raise ValueError(f"unknown diagnosis code {code!r}; use one of {', '.join(classes)}")
        return code

    def label(self, session: Session, capture_id: int, code: str | None,
              note: str | None = None) -> int:
        """The capturing operator's label (the original label); returns the label id.

        ``code`` None stores a note without a diagnosis (the note is then required).
        """
        self.auth.require(session, can_capture)
        checked = None if code is None else self._check_code(code)
        return self.store.add_operator_label(capture_id, checked,
                                             author_id=session.operator_id, note=note).id

    def review(self, session: Session, capture_id: int, code: str,
               note: str | None = None) -> int:
        """A dermatologist confirms or corrects the diagnosis (becomes the final label)."""
        self.auth.require(session, can_review)
        return self.store.add_review(capture_id, self._check_code(code),
                                     author_id=session.operator_id, note=note).id

    # -- reading --------------------------------------------------------------------------

    def history(self, session: Session, *, patient_id: int | None = None,
                since: dt.datetime | None = None, until: dt.datetime | None = None,
                decision: str | None = None, review_state: ReviewState | None = None,
                limit: int = 500) -> list[CaptureSummary]:
        """Captures by patient, date range, decision and review state (newest first)."""
        self.auth.require(session, can_view_history)
        return self.store.history(actor_id=session.operator_id, patient_id=patient_id,
                                  since=since, until=until, decision=decision,
                                  review_state=review_state, limit=limit)

    def review_queue(self, session: Session, limit: int = 500) -> list[CaptureSummary]:
        """Unreviewed captures, indeterminate and suspected cancer first."""
        self.auth.require(session, can_review)
        return self.store.review_queue(actor_id=session.operator_id, limit=limit)

    def capture_detail(self, session: Session, capture_id: int) -> CaptureDetail:
        """A capture with its pixels, latest prediction and labels (audited reads)."""
        self.auth.require(session, can_view_history)
        from skinstation.inference.preprocessing import decode_image

        capture = self.store.get_capture(capture_id, actor_id=session.operator_id)
        pixels = decode_image(self.store.read_image(capture_id, actor_id=session.operator_id),
                              name=f"capture {capture.id}")
        labels = self.store.labels(capture_id, actor_id=session.operator_id)
        prediction = self.store.latest_prediction(capture_id)
        return CaptureDetail(capture, pixels, prediction, labels)

    def thumbnails(self, session: Session, capture_ids: Sequence[int],
                   max_side: int = 96) -> dict[int, np.ndarray]:
        """Small RGB copies of captures for history lists (audited image reads)."""
        self.auth.require(session, can_view_history)
        import cv2

        from skinstation.inference.preprocessing import decode_image

        result = {}
        for capture_id in capture_ids:
            pixels = decode_image(self.store.read_image(capture_id, actor_id=session.operator_id),
                                  name=f"capture {capture_id}")
            height, width = pixels.shape[:2]
            scale = min(1.0, max_side / max(height, width))
            size = (max(1, round(width * scale)), max(1, round(height * scale)))
            result[capture_id] = cv2.resize(pixels, size, interpolation=cv2.INTER_AREA)
        return result
