"""Robustness as a measured property: the same test images, shifted as other clinics shift them.

Each shift is applied to the decoded image *before* the station's preprocessing (so the
station's colour constancy gets its chance, as it would with another clinic's camera):

- colour: saturation ×0.6 and ×1.6, hue ±0.05 of the colour circle, gamma 0.7 and 1.4,
  white-balance casts (warm, cool, green);
- optics and software: Gaussian blur (sigma 1.5 px), JPEG quality 30;
- geometry: rotation by 45° and 90°, scale 0.8 (zoomed out, reflected border) and 1.25
  (zoomed in).

:func:`evaluate_robustness` reports balanced accuracy, melanoma sensitivity, the referral as
the station shows it and the not-assessable rate under every shift, beside the unshifted
figures, with the cost of each shift (unshifted minus shifted balanced accuracy).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import cv2
import numpy as np

from skinstation.inference.classifier import Classifier
from skinstation.training.augment import jpeg_roundtrip
from skinstation.training.evaluation import compute_metrics, run_model
from skinstation.training.progress import Log, print_log
from skinstation.training.sources import Record

Shift = Callable[[np.ndarray], np.ndarray]


def saturation(factor: float) -> Shift:
    """Scale HSV saturation by ``factor``."""
    def shift(image: np.ndarray) -> np.ndarray:
        hsv = cv2.cvtColor(image, cv2.COLOR_RGB2HSV).astype(np.float32)
        hsv[..., 1] = np.clip(hsv[..., 1] * factor, 0, 255)
        return cv2.cvtColor(hsv.astype(np.uint8), cv2.COLOR_HSV2RGB)
    return shift


def hue(turn: float) -> Shift:
    """Rotate hue by ``turn`` of the colour circle (0.05 = 18°)."""
    def shift(image: np.ndarray) -> np.ndarray:
        hsv = cv2.cvtColor(image, cv2.COLOR_RGB2HSV).astype(np.float32)
        hsv[..., 0] = (hsv[..., 0] + turn * 180.0) % 180.0  # OpenCV hue is 0-180
        return cv2.cvtColor(hsv.astype(np.uint8), cv2.COLOR_HSV2RGB)
    return shift


def gamma(value: float) -> Shift:
    """Raise intensities (0-1) to the power ``value``."""
    table = np.clip(255.0 * (np.arange(256) / 255.0) ** value, 0, 255).astype(np.uint8)
    return lambda image: cv2.LUT(image, table)


def cast(red: float, green: float, blue: float) -> Shift:
    """A white-balance cast: per-channel gains."""
    gains = np.array([red, green, blue], np.float32)
    return lambda image: np.clip(image.astype(np.float32) * gains, 0, 255).astype(np.uint8)


def blur(sigma: float) -> Shift:
    """Gaussian blur (defocus)."""
    return lambda image: cv2.GaussianBlur(image, (0, 0), sigma)


def jpeg(quality: int) -> Shift:
    """JPEG re-encoding at ``quality``."""
    return lambda image: jpeg_roundtrip(image, quality)


def rotate(degrees: float) -> Shift:
    """Rotation about the centre (reflected border)."""
    def shift(image: np.ndarray) -> np.ndarray:
        height, width = image.shape[:2]
        matrix = cv2.getRotationMatrix2D((width / 2, height / 2), degrees, 1.0)
        return cv2.warpAffine(image, matrix, (width, height), flags=cv2.INTER_LINEAR,
                              borderMode=cv2.BORDER_REFLECT_101)
    return shift


def scale(factor: float) -> Shift:
    """Zoom about the centre by ``factor`` (< 1 zooms out, reflected border)."""
    def shift(image: np.ndarray) -> np.ndarray:
        height, width = image.shape[:2]
        matrix = cv2.getRotationMatrix2D((width / 2, height / 2), 0.0, factor)
        return cv2.warpAffine(image, matrix, (width, height), flags=cv2.INTER_LINEAR,
                              borderMode=cv2.BORDER_REFLECT_101)
    return shift


COLOUR_SHIFTS: dict[str, Shift] = {
    "saturation x0.6": saturation(0.6), "saturation x1.6": saturation(1.6),
    "hue +0.05": hue(0.05), "hue -0.05": hue(-0.05),
    "gamma 0.7": gamma(0.7), "gamma 1.4": gamma(1.4),
    "cast warm": cast(1.15, 1.0, 0.85), "cast cool": cast(0.85, 1.0, 1.15),
    "cast green": cast(0.92, 1.12, 0.92),
}
"""The colour shifts whose cost the issue caps (each ≤ 0.05 balanced accuracy)."""

OTHER_SHIFTS: dict[str, Shift] = {
    "blur 1.5": blur(1.5), "jpeg 30": jpeg(30), "rotate 45": rotate(45.0),
    "rotate 90": rotate(90.0), "scale 0.8": scale(0.8), "scale 1.25": scale(1.25),
}

SHIFTS: dict[str, Shift] = {**COLOUR_SHIFTS, **OTHER_SHIFTS}


def _row(metrics: dict[str, Any]) -> dict[str, float]:
    referral = metrics.get("referral", {})
    return {
        "balanced_accuracy": float(metrics["balanced_accuracy"]),
        "mel_sensitivity": float(metrics["per_class"]["mel"]["sensitivity"]),
        "referral_sensitivity": float(referral.get("sensitivity", float("nan"))),
        "referral_specificity": float(referral.get("specificity", float("nan"))),
        "not_assessable": float(metrics["decision_rule"]["not_assessable"]),
        "ece": float(metrics["ece"]),
    }


def evaluate_robustness(classifier: Classifier, records: Sequence[Record],
                        shifts: Sequence[str] = tuple(SHIFTS), log: Log = print_log,
                        n_boot: int = 0) -> dict[str, Any]:
    """Figures on the unshifted images and under every named shift.

    Args:
        classifier: The model, as the station runs it.
        records: Test images.
        shifts: Names from :data:`SHIFTS`.
        log: Progress sink.
        n_boot: Bootstrap resamples for CIs (0: none; the shifts compare like with like).

    Returns:
        ``{"none": row, "shifts": {name: row + "cost"}, "worst_colour_cost": float}``, each
        row holding balanced accuracy, melanoma and referral sensitivity, referral
        specificity, not-assessable rate and ECE.

    Raises:
        KeyError: An unknown shift name.
    """
    unknown = [name for name in shifts if name not in SHIFTS]
    if unknown:
        raise KeyError(f"unknown shift(s) {', '.join(unknown)}; known: {', '.join(SHIFTS)}")

    def figures(transform: Shift | None) -> dict[str, float]:
        outputs = run_model(classifier, records, log=log, transform=transform)
        return _row(compute_metrics(outputs, classifier.taxonomy, classifier.temperature,
                                    classifier.referral_threshold, n_boot=n_boot))

    base = figures(None)
    rows = {}
    for name in shifts:
        log(f"[robustness] {name}")
        row = figures(SHIFTS[name])
        rows[name] = {**row, "cost": base["balanced_accuracy"] - row["balanced_accuracy"]}
    colour = [rows[n]["cost"] for n in rows if n in COLOUR_SHIFTS]
    return {"none": base, "shifts": rows,
            "worst_colour_cost": max(colour) if colour else float("nan")}


def format_robustness(label: str, result: dict[str, Any]) -> str:
    """A plain-text table of one :func:`evaluate_robustness` result."""
    header = (f"{label:<18} {'bal.acc':>8} {'cost':>7} {'mel sens':>9} {'ref sens':>9} "
              f"{'ref spec':>9} {'NA':>6} {'ECE':>6}")
    lines = [header, "-" * len(header)]

    def line(name: str, row: dict[str, float], cost: float | None) -> str:
        shown = f"{cost:+.3f}" if cost is not None else ""
        return (f"{name:<18} {row['balanced_accuracy']:>8.3f} {shown:>7} "
                f"{row['mel_sensitivity']:>9.3f} {row['referral_sensitivity']:>9.3f} "
                f"{row['referral_specificity']:>9.3f} {row['not_assessable']:>6.3f} "
                f"{row['ece']:>6.3f}")

    lines.append(line("unshifted", result["none"], None))
    for name, row in result["shifts"].items():
        lines.append(line(name, row, row["cost"]))
    lines.append(f"worst colour-shift cost: {result['worst_colour_cost']:+.3f} "
                 "(balanced accuracy lost; the floor is 0.05)")
    return "\n".join(lines)
