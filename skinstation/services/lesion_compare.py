"""Comparing two captures of a lesion: segment, register, measure and flag change (free of Qt).

The lesion timeline screen calls :func:`compare_captures` in a worker thread and only renders
what it returns: the registered side-by-side and overlay images and the measured rows.

Typical use::

    result = compare_captures(station, session, first_capture_id, second_capture_id)
    for row in result.rows():
        print(row.key, row.before, row.after, row.change, row.changed)
    blended = result.overlay(0.5)

Sizes are in mm (area mm², maximum diameter mm) when both captures were saved with a pixel
size (``captures.mm_per_pixel``, from ``camera.field_of_view_mm`` when each was taken), else in
pixels (:attr:`LesionComparison.units`). The change and its flags are the same either way:
sizes in pixels corrected by the registration's scale, as the thresholds of
:mod:`skinstation.inference.lesion_change` were set.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, replace

import numpy as np

from skinstation.auth import Session
from skinstation.core.i18n import TranslatableError
from skinstation.inference.lesion_change import (
    LesionChange,
    LesionMeasurement,
    compare,
    measure_lesion,
)
from skinstation.inference.lesion_registration import (
    Registration,
    overlay,
    register,
    side_by_side,
    warp_to_fixed,
)
from skinstation.inference.segmentation import segment_lesion
from skinstation.services.station import StationService

MEASURES = ("area", "diameter", "colour")
"""The rows :meth:`LesionComparison.rows` gives, in order."""
MM, PX = "mm", "px"
"""The units of :attr:`LesionComparison.units`."""


class ComparisonError(TranslatableError, ValueError):
    """Two captures that cannot be compared, said in the window's language.

    Raised with a text key (``error.compare.*``); ``str()`` is the English text.
    """


@dataclass(frozen=True)
class MeasureRow:
    """One measured quantity of the comparison, formatted for display.

    Attributes:
        key: ``area``, ``diameter`` or ``colour``.
        label_key: The text key of the measure's name: ``ui.lesions.measure.<key>`` (its unit,
            px² or px, in the name), or ``ui.lesions.measure.<key>_mm`` for sizes in mm (the
            unit is in the values).
        before: The earlier capture's value (area ``11310`` px² or ``19.6 mm²``, diameter
            ``121.0`` px or ``5.0 mm``, colour as L*a*b*).
        after: The later capture's value.
        change: The change: relative for area and diameter (``+12.3%``), ΔE for colour.
        changed: Whether the change is flagged (above the threshold of
            :mod:`skinstation.inference.lesion_change`).
    """

    key: str
    label_key: str
    before: str
    after: str
    change: str
    changed: bool


@dataclass(frozen=True)
class LesionComparison:
    """Two captures of a lesion, the earlier as ``before``, measured and aligned.

    Attributes:
        before_id: The earlier capture.
        after_id: The later capture.
        before_time: When the earlier was taken (UTC).
        after_time: When the later was taken (UTC).
        before_pixels: The earlier capture, (H, W, 3) RGB.
        after_pixels: The later capture as taken.
        before_mask: The earlier capture's lesion mask.
        after_mask: The later capture's lesion mask (its own frame).
        registration: The later capture registered onto the earlier.
        before_measure: Measurements of the earlier capture (in mm too when it has a scale).
        after_measure: Measurements of the later capture (likewise).
        change: The change from before to after, with its flags (from the sizes in pixels
            corrected by the registration's scale, with or without a scale in mm).
    """

    before_id: int
    after_id: int
    before_time: dt.datetime
    after_time: dt.datetime
    before_pixels: np.ndarray
    after_pixels: np.ndarray
    before_mask: np.ndarray
    after_mask: np.ndarray
    registration: Registration
    before_measure: LesionMeasurement
    after_measure: LesionMeasurement
    change: LesionChange

    @property
    def units(self) -> str:
        """:data:`MM` when both captures have a pixel size in mm, else :data:`PX`."""
        scaled = (self.before_measure.area_mm2 is not None
                  and self.after_measure.area_mm2 is not None)
        return MM if scaled else PX

    def aligned(self) -> np.ndarray:
        """The later capture warped into the earlier capture's frame (RGB uint8)."""
        shape = (self.before_pixels.shape[0], self.before_pixels.shape[1])
        return warp_to_fixed(self.after_pixels, self.registration, shape)

    def side_by_side(self) -> np.ndarray:
        """The earlier capture and the aligned later one next to each other, outlined."""
        shape = (self.before_pixels.shape[0], self.before_pixels.shape[1])
        mask = warp_to_fixed(self.after_mask.astype(bool), self.registration, shape)
        return side_by_side(self.before_pixels, self.aligned(), self.before_mask, mask)

    def overlay(self, alpha: float) -> np.ndarray:
        """The aligned later capture blended over the earlier at ``alpha`` (0..1)."""
        alpha = min(1.0, max(0.0, float(alpha)))
        return overlay(self.before_pixels, self.after_pixels, self.registration,
                       self.before_mask, self.after_mask, alpha=alpha)

    def rows(self) -> list[MeasureRow]:
        """Area, diameter and colour: before, after, change and flag (see :data:`MEASURES`).

        Sizes read ``12.4 mm²`` and ``4.1 mm`` when :attr:`units` is :data:`MM`, else
        ``11310`` (px²) and ``121.0`` (px).
        """
        before, after, change = self.before_measure, self.after_measure, self.change
        area, diameter = f"{_MEASURE}.area", f"{_MEASURE}.diameter"
        sizes: tuple[str, ...]
        if self.units == MM:
            sizes = (f"{area}_mm", f"{before.area_mm2:.1f} mm²", f"{after.area_mm2:.1f} mm²",
                     f"{diameter}_mm", f"{before.diameter_mm:.1f} mm",
                     f"{after.diameter_mm:.1f} mm")
        else:
            sizes = (area, f"{before.area_px:d}", f"{after.area_px:d}",
                     diameter, f"{before.diameter_px:.1f}", f"{after.diameter_px:.1f}")
        return [
            MeasureRow("area", *sizes[:3], _percent(change.area_change), change.area_changed),
            MeasureRow("diameter", *sizes[3:], _percent(change.diameter_change),
                       change.diameter_changed),
            MeasureRow("colour", f"{_MEASURE}.colour", _lab(before.lab_mean),
                       _lab(after.lab_mean), f"ΔE {change.colour_delta_e:.1f}",
                       change.colour_changed),
        ]


_MEASURE = "ui.lesions.measure"


def _in_pixels(measure: LesionMeasurement) -> LesionMeasurement:
    """``measure`` without its sizes in mm (so :func:`compare` corrects by registration)."""
    return replace(measure, area_mm2=None, diameter_mm=None)


def _percent(value: float) -> str:
    return "∞" if not np.isfinite(value) else f"{value * 100:+.1f}%"


def _lab(lab: tuple[float, float, float]) -> str:
    return f"L {lab[0]:.0f} · a {lab[1]:.0f} · b {lab[2]:.0f}"


def compare_captures(station: StationService, session: Session, first_id: int,
                     second_id: int) -> LesionComparison:
    """Compare two stored captures (audited reads): the earlier one is the reference.

    Each capture is measured with its own stored pixel size (``mm_per_pixel``, None for one
    saved with no field of view set). The change is computed from the sizes in pixels
    corrected by the registration's scale in every case, so the flags do not depend on
    whether the captures have a scale.

    Args:
        station: The station service.
        session: The operator's session (permission ``can_view_history``).
        first_id: One capture.
        second_id: The other capture (order does not matter: capture time decides).

    Returns:
        The comparison of the earlier (``before``) with the later (``after``) capture.

    Raises:
        ComparisonError: If both ids are the same capture (``error.compare.same_capture``),
            or no lesion is found in one of them (``error.compare.no_lesion``: a change
            against nothing would read "+∞, changed"). A ``ValueError`` too.
        PermissionDeniedError: If the session may not view captures.
        NotFoundError: If a capture does not exist.
    """
    if first_id == second_id:
        raise ComparisonError("error.compare.same_capture")
    first = station.capture_detail(session, first_id)
    second = station.capture_detail(session, second_id)
    if (second.capture.capture_time, second.capture.id) < (first.capture.capture_time,
                                                          first.capture.id):
        first, second = second, first
    before_mask = segment_lesion(first.pixels)
    after_mask = segment_lesion(second.pixels)
    for detail, mask in ((first, before_mask), (second, after_mask)):
        if not mask.any():
            raise ComparisonError("error.compare.no_lesion", id=detail.capture.id)
    registration = register(first.pixels, second.pixels, before_mask, after_mask)
    before_measure = measure_lesion(first.pixels, before_mask, first.capture.mm_per_pixel)
    after_measure = measure_lesion(second.pixels, after_mask, second.capture.mm_per_pixel)
    change = compare(_in_pixels(before_measure), _in_pixels(after_measure),
                     after_scale=registration.scale)
    return LesionComparison(
        before_id=first.capture.id, after_id=second.capture.id,
        before_time=first.capture.capture_time, after_time=second.capture.capture_time,
        before_pixels=first.pixels, after_pixels=second.pixels,
        before_mask=before_mask, after_mask=after_mask, registration=registration,
        before_measure=before_measure, after_measure=after_measure,
        change=change)
