"""The capture use case, free of Qt: analyse a capture, then save exactly what was shown.

The result screen only renders: it calls :func:`analyse` (quality check, then the classifier
and its decision) in the model thread, shows the :class:`CaptureAnalysis`, and hands that same
object back to :func:`save` with the operator's diagnosis and note. Nothing is re-classified
at save time, so the prediction stored (and synced) is the one the operator saw.

The model is trained on white-light dermoscopy, so only a white-light frame is classified
(:func:`is_classifiable_band`): a single capture in another band (UV 365 nm, NIR, ...) is
stored with its band but gets no prediction, and a multispectral sequence is classified on its
white-light frame only (:func:`classification_band`).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from skinstation.auth import Session
from skinstation.camera import BANDS, Frame, QualityReport
from skinstation.inference.classifier import Prediction
from skinstation.services.station import SavedCapture, StationService
from skinstation.storage.validation import require_text

WHITE = "white"
"""The band the classifier is meant for (and the one a sequence is classified on)."""

NOT_CLASSIFIED_BAND = "band"
NOT_CLASSIFIED_QUALITY = "quality"


def is_classifiable_band(band: str) -> bool:
    """True for broadband white light (``white``, ``cross_polarised``): the model's domain.

    The model is trained on white-light dermoscopy images (polarised or not); a narrow band
    (ultraviolet, violet, amber, red, near-infrared) shows the skin differently, so the model's
    output on it would be meaningless. An unknown band name is not classifiable.
    """
    known = BANDS.get(band)
    return known is not None and known.wavelength_nm is None


def classification_band(bands: Sequence[str]) -> str | None:
    """The band of a sequence that is classified: ``white``, else the first white-light band.

    Returns None when the sequence has no white-light frame (nothing is classified then).
    """
    if WHITE in bands:
        return WHITE
    return next((band for band in bands if is_classifiable_band(band)), None)


@dataclass(frozen=True)
class CaptureAnalysis:
    """What the station found for one capture, as shown on the result screen.

    Attributes:
        quality: The capture-quality report.
        prediction: The classifier's output; None if the band is not white light, the quality
            check failed (and was not overridden) or the model failed.
        model_error: Why the model failed, or None.
        band: The band of the analysed frame.
    """

    quality: QualityReport
    prediction: Prediction | None
    model_error: BaseException | None
    band: str = WHITE

    @property
    def not_classified(self) -> str | None:
        """Why there is no prediction: ``"band"`` (not white light), ``"quality"``, or None.

        None also when the model failed (see :attr:`model_error`).
        """
        if self.prediction is not None or self.model_error is not None:
            return None
        if not is_classifiable_band(self.band):
            return NOT_CLASSIFIED_BAND
        return NOT_CLASSIFIED_QUALITY


@dataclass(frozen=True)
class CaptureSaved:
    """What :func:`save` stored.

    Attributes:
        capture_ids: Every capture stored (one, or one per band of a sequence).
        main_capture_id: The capture the prediction and labels belong to.
        prediction_id: The stored prediction, or None if none was shown.
        label_id: The operator's label row, or None without a diagnosis or a note.
        diagnosis: The operator's diagnosis code, or None.
        note: The operator's note as stored, or None.
        visit_id: The visit the captures were stored in: the one asked for, or the new visit
            that replaced it when it had been left open too long (closed automatically).
    """

    capture_ids: tuple[int, ...]
    main_capture_id: int
    prediction_id: int | None
    label_id: int | None
    diagnosis: str | None
    note: str | None
    visit_id: int | None = None

    @property
    def parts(self) -> tuple[str, ...]:
        """What was saved, in order: ``capture``, ``prediction``, ``diagnosis``, ``note``."""
        flags = (("capture", True), ("prediction", self.prediction_id is not None),
                 ("diagnosis", self.diagnosis is not None), ("note", self.note is not None))
        return tuple(name for name, present in flags if present)


def analyse(service: StationService, pixels: np.ndarray, *, band: str = WHITE,
            force: bool = False) -> CaptureAnalysis:
    """Quality-check a frame, then classify it if it passed (or if ``force``).

    A frame in a band other than white light is never classified, ``force`` or not (see
    :func:`is_classifiable_band`). A model failure is returned in
    :attr:`CaptureAnalysis.model_error`, not raised, so the quality report is still shown.
    """
    quality = service.check_quality(pixels)
    if not is_classifiable_band(band) or not (quality.passed or force):
        return CaptureAnalysis(quality, None, None, band)
    try:
        return CaptureAnalysis(quality, service.classify(pixels), None, band)
    except Exception as exc:
        return CaptureAnalysis(quality, None, exc, band)


def _clean_label(service: StationService, diagnosis: str | None,
                 note: str | None) -> tuple[str | None, str | None]:
    """Check the operator's input before anything is stored (a bad one stores nothing)."""
    code = diagnosis or None
    if code is not None:
        classes = service.models.classifier().taxonomy.classes
        if code not in classes:
            raise ValueError(f"unknown diagnosis code {code!r}; use one of {', '.join(classes)}")
    text = (note or "").strip() or None
    if text is not None:
        text = require_text(text, "note", 2000, multiline=True)
    return code, text


def save(
    service: StationService, session: Session, visit_id: int, analysis: CaptureAnalysis, *,
    frame: Frame, band: str, body_site: str, access_time: dt.datetime,
    sequence: Sequence[tuple[str, Frame]] | None = None, diagnosis: str | None = None,
    note: str | None = None, lesion_id: int | None = None,
) -> CaptureSaved:
    """Store a capture (or a multispectral sequence) exactly as it was shown.

    Args:
        service: The station service.
        session: The capturing operator's session.
        visit_id: The open visit.
        analysis: The analysis shown; its prediction is stored as it is (never re-computed).
        frame: The frame shown (for a sequence, the ``band`` frame of it).
        band: The band of ``frame``.
        body_site: Where on the body.
        access_time: When the patient's record was opened.
        sequence: ``(band, frame)`` of every band of a multispectral sequence, or None.
        diagnosis: The operator's diagnosis code, or None / "" for none.
        note: The operator's note (blank for none); stored with or without a diagnosis.
        lesion_id: The lesion the capture shows (every frame of a sequence), or None.

    Returns:
        What was stored.

    Raises:
        ValueError: On an unknown diagnosis code or an invalid note, or when ``analysis`` is
            of another band than ``band`` or holds a prediction of a frame that is not white
            light, or when the lesion is not one of the visit's patient (nothing is stored).
        SyntheticFrameError: For drawn demonstration frames.
        PermissionDeniedError: Unless the session may capture.
    """
    code, text = _clean_label(service, diagnosis, note)
    if analysis.band != band:
        raise ValueError(f"the analysis shown is of the {analysis.band} frame, not {band}")
    prediction = analysis.prediction
    if prediction is not None and not is_classifiable_band(band):
        raise ValueError(f"a {band} capture is not classified: the model is trained on "
                         "white-light images only")
    stored: list[SavedCapture]
    if sequence:
        stored = service.save_multispectral(
            session, visit_id, list(sequence), body_site=body_site, access_time=access_time,
            classify_band=band, prediction=prediction, lesion_id=lesion_id)
        main = next(s for s, (name, _) in zip(stored, sequence, strict=True) if name == band)
    else:
        main = service.save_capture(session, visit_id, frame, band=band, body_site=body_site,
                                    access_time=access_time, prediction=prediction,
                                    lesion_id=lesion_id)
        stored = [main]
    label_id = None
    if code is not None or text is not None:
        label_id = service.label(session, main.capture.id, code, note=text)
    return CaptureSaved(tuple(s.capture.id for s in stored), main.capture.id,
                        main.prediction_id, label_id, code, text, main.capture.visit_id)
