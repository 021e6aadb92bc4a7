"""Capture-quality checks run before a frame is classified.

Every measure is taken on a copy scaled so its long side is :data:`NORMALISED_LONG_SIDE`
pixels (200, the resolution of the HAM10000 images the thresholds were calibrated on and about
what the classifier sees), so the same thresholds hold for a 200×150 file and a 1280×960
camera frame. A dermatoscope's dark vignette (black corners around a round field of view) is
found first and left out of every measure.

Checks (thresholds from :class:`~skinstation.settings.QualitySettings`):

``focus``
    Variance of the Laplacian of the grey image, after scaling its mean to 128 so the value
    measures detail rather than brightness; at least ``min_focus``.
``underexposure`` / ``overexposure``
    Mean grey level of the field of view, within ``min_brightness``..``max_brightness``.
``clipping``
    Fraction of the field of view with a colour channel at 250 or more (information lost to
    overexposure); at most ``max_clipped_fraction``.
``glare``
    Fraction of specular pixels: value (HSV) at least 245 and saturation at most 25 of 255;
    at most ``max_glare_fraction``.
``lesion_contrast`` / ``lesion_size`` / ``lesion_border``
    The lesion is the region darker and browner than the skin around it (Otsu's threshold on
    luminance × blue chromaticity), picking the component with the largest area weighted by
    closeness to the centre, where operators aim. It must differ from the skin around it by
    a colour difference (CIE76 ΔE) of at least ``min_lesion_contrast`` and cover at least
    ``min_lesion_fraction`` of the field of view; at most ``max_lesion_border_fraction`` of its
    outline may lie on the edge of the field of view (a disc cut in half has 0.39 of its
    outline there, a quarter disc in a corner 0.56, a lesion filling one side of the frame
    about 0.7; HAM10000 has many lesions cut by the frame, hence the lenient default).

``bench/calibrate_quality.py`` measures the pass rates on real images.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import cv2
import numpy as np
import numpy.typing as npt

from skinstation.settings import QualitySettings

NORMALISED_LONG_SIDE = 200
CLIPPED_LEVEL = 250
GLARE_MIN_VALUE = 245
GLARE_MAX_SATURATION = 25
VIGNETTE_MIN_LEVEL = 10
VIGNETTE_RELATIVE_LEVEL = 0.25
CENTRE_WEIGHT_SIGMA = 0.3


@dataclass(frozen=True)
class QualityCheck:
    """The outcome of one check.

    Attributes:
        name: ``focus``, ``underexposure``, ``overexposure``, ``clipping``, ``glare``,
            ``lesion_contrast``, ``lesion_size`` or ``lesion_border``.
        value: The measured value.
        threshold: The limit it was compared with.
        passed: Whether the value is on the right side of the threshold.
        reason: A sentence for the operator, e.g. "image is out of focus: sharpness 2.1
            below 4.0".
    """

    name: str
    value: float
    threshold: float
    passed: bool
    reason: str


@dataclass(frozen=True)
class QualityReport:
    """All checks of one image; :attr:`passed` if every check passed."""

    checks: tuple[QualityCheck, ...]

    @property
    def passed(self) -> bool:
        """True if every check passed."""
        return all(check.passed for check in self.checks)

    @property
    def failures(self) -> tuple[QualityCheck, ...]:
        """The checks that failed, in order."""
        return tuple(check for check in self.checks if not check.passed)

    @property
    def reasons(self) -> list[str]:
        """Why the image was rejected (empty if it passed)."""
        return [check.reason for check in self.failures]

    def __getitem__(self, name: str) -> QualityCheck:
        for check in self.checks:
            if check.name == name:
                return check
        raise KeyError(name)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (stored with the capture)."""
        return {"passed": self.passed, "checks": [asdict(check) for check in self.checks]}


@dataclass(frozen=True)
class QualityMeasures:
    """The raw measures behind a :class:`QualityReport` (see the module docstring)."""

    focus: float
    brightness: float
    clipped_fraction: float
    glare_fraction: float
    lesion_contrast: float
    lesion_fraction: float
    lesion_border_fraction: float


def normalise_size(image: np.ndarray) -> np.ndarray:
    """Scale an image so its long side is :data:`NORMALISED_LONG_SIDE` pixels."""
    height, width = image.shape[:2]
    scale = NORMALISED_LONG_SIDE / max(height, width)
    if scale == 1.0:
        return image
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    interpolation = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
    return cv2.resize(image, size, interpolation=interpolation)


def field_of_view(grey: np.ndarray) -> np.ndarray:
    """Boolean mask of the lit field: everything but dark regions touching the image edge."""
    blurred = cv2.GaussianBlur(grey, (0, 0), 2)
    level = max(VIGNETTE_MIN_LEVEL, VIGNETTE_RELATIVE_LEVEL * float(np.median(blurred)))
    dark = (blurred < level).astype(np.uint8)
    count, labels = cv2.connectedComponents(dark, connectivity=8)
    if count <= 1:
        return np.ones(grey.shape, bool)
    edge_labels = np.unique(np.concatenate([labels[0], labels[-1], labels[:, 0], labels[:, -1]]))
    vignette = np.isin(labels, edge_labels[edge_labels > 0])
    return ~vignette


def _edge(mask: np.ndarray) -> npt.NDArray[np.bool_]:
    """Pixels of ``mask`` on its boundary (the image border counts as outside)."""
    padded = np.pad(mask.astype(np.uint8), 1)
    eroded = cv2.erode(padded, np.ones((3, 3), np.uint8))[1:-1, 1:-1].astype(bool)
    edge: npt.NDArray[np.bool_] = mask & ~eroded
    return edge


def outline_on_edge(lesion: np.ndarray, edge: np.ndarray) -> float:
    """Fraction of the lesion's outline length that runs along ``edge`` (0 if no lesion).

    Lengths follow the 8-connected contour (diagonal steps count √2), so a lesion cut by the
    frame scores the same whatever the angle of its outline.
    """
    contours, _ = cv2.findContours(
        lesion.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE
    )
    total = on_edge = 0.0
    for contour in contours:
        points = contour[:, 0, :]
        steps = np.hypot(*(np.roll(points, -1, axis=0) - points).T)
        touching = edge[points[:, 1], points[:, 0]]
        total += float(steps.sum())
        on_edge += float(steps[touching & np.roll(touching, -1)].sum())
    return on_edge / total if total else 0.0


def find_lesion(rgb: np.ndarray, fov: np.ndarray) -> npt.NDArray[np.bool_]:
    """Boolean mask of the most likely lesion in a normalised RGB image (may be empty)."""
    pixels = rgb.astype(np.float32) + 1.0
    luminance = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY).astype(np.float32) + 1.0
    feature = pixels[..., 2] / pixels.sum(axis=2) * np.sqrt(luminance / luminance[fov].mean())
    feature = cv2.GaussianBlur(feature, (0, 0), 2)
    low, high = np.percentile(feature[fov], [1, 99])
    scaled = np.clip((feature - low) / max(float(high - low), 1e-6) * 255, 0, 255).astype(np.uint8)
    threshold, _ = cv2.threshold(
        scaled[fov].reshape(1, -1), 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU
    )
    candidates = ((scaled < threshold) & fov).astype(np.uint8)
    candidates = cv2.morphologyEx(candidates, cv2.MORPH_OPEN, np.ones((5, 5), np.uint8))
    count, labels, stats, centroids = cv2.connectedComponentsWithStats(candidates, connectivity=8)
    if count <= 1:
        return np.zeros(fov.shape, bool)
    height, width = fov.shape
    offsets = (centroids[1:] - ((width - 1) / 2, (height - 1) / 2)) / (width / 2, height / 2)
    distance = np.hypot(offsets[:, 0], offsets[:, 1]) / np.sqrt(2)
    score = stats[1:, cv2.CC_STAT_AREA] * np.exp(-(distance**2) / (2 * CENTRE_WEIGHT_SIGMA**2))
    lesion: npt.NDArray[np.bool_] = labels == 1 + int(np.argmax(score))
    return lesion


def _colour_difference(
    rgb: np.ndarray, lesion: np.ndarray, fov: np.ndarray, brightness: float
) -> float:
    """CIE76 ΔE between the lesion's mean colour and the skin in a ring around it.

    Colours are first scaled to a mean grey of 128, so the contrast does not depend on the
    exposure (which has its own checks).
    """
    if not lesion.any():
        return 0.0
    scaled = rgb.astype(np.float32) * (128.0 / 255.0 / max(brightness, 1.0))
    lab = cv2.cvtColor(scaled, cv2.COLOR_RGB2LAB)
    around = cv2.dilate(lesion.astype(np.uint8), np.ones((15, 15), np.uint8)).astype(bool)
    ring = around & fov & ~lesion
    if not ring.any():
        ring = fov & ~lesion
    if not ring.any():
        return 0.0
    return float(np.linalg.norm(lab[lesion].mean(axis=0) - lab[ring].mean(axis=0)))


def measure_quality(image: np.ndarray) -> QualityMeasures:
    """Compute every quality measure of an RGB uint8 image (any size).

    Raises:
        ValueError: If the image is not (H, W, 3) uint8.
    """
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError(f"expected an (H, W, 3) uint8 RGB image, got {image.shape} {image.dtype}")
    rgb = normalise_size(image)
    grey = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
    fov = field_of_view(grey)
    if fov.mean() < 0.25:  # almost all dark: a black frame, not a vignette
        fov = np.ones_like(fov)
    brightness = float(grey[fov].mean())
    normalised = grey.astype(np.float32) * (128.0 / max(brightness, 1.0))
    laplacian = cv2.Laplacian(normalised, cv2.CV_32F)
    interior = cv2.erode(fov.astype(np.uint8), np.ones((5, 5), np.uint8)).astype(bool)
    focus = float(laplacian[interior].var()) if interior.any() else 0.0
    clipped = float((rgb.max(axis=2)[fov] >= CLIPPED_LEVEL).mean())
    hsv = cv2.cvtColor(rgb, cv2.COLOR_RGB2HSV)
    specular = (hsv[..., 2] >= GLARE_MIN_VALUE) & (hsv[..., 1] <= GLARE_MAX_SATURATION)
    glare = float(specular[fov].mean())
    lesion = find_lesion(rgb, fov)
    return QualityMeasures(
        focus=focus,
        brightness=brightness,
        clipped_fraction=clipped,
        glare_fraction=glare,
        lesion_contrast=_colour_difference(rgb, lesion, fov, brightness),
        lesion_fraction=float(lesion.sum() / fov.sum()),
        lesion_border_fraction=outline_on_edge(lesion, _edge(fov)),
    )


def _check(
    name: str,
    value: float,
    threshold: float,
    minimum: bool,
    problem: str,
    measure: str,
    limit: str,
    advice: str = "",
) -> QualityCheck:
    """Compare ``value`` with ``threshold`` and word the outcome.

    Args:
        name: The check's name.
        value: The measure.
        threshold: The limit (a minimum if ``minimum``, else a maximum).
        minimum: Whether ``value`` must be at least (True) or at most (False) ``threshold``.
        problem: What is wrong when the check fails, e.g. "image is out of focus".
        measure: The value in words, e.g. "sharpness 1.2" (a trailing comma is kept only in
            the failure text: "12.0% of pixels clipped, above 5.0%").
        limit: The threshold in words, e.g. "4.0".
        advice: Appended to the failure text, e.g. " (move closer)".
    """
    passed = value >= threshold if minimum else value <= threshold
    if passed:
        reason = f"{measure.rstrip(',')}, not {'below' if minimum else 'above'} {limit}"
    else:
        reason = f"{problem}: {measure} {'below' if minimum else 'above'} {limit}{advice}"
    return QualityCheck(name, value, threshold, passed, reason)


def assess_quality(image: np.ndarray, settings: QualitySettings) -> QualityReport:
    """Check focus, exposure, glare and framing of an RGB uint8 image.

    Args:
        image: The frame or decoded file, (H, W, 3) uint8 RGB, any size.
        settings: The thresholds.

    Returns:
        The report; ``report.passed`` is the verdict, ``report.reasons`` the explanation.
    """
    m, s = measure_quality(image), settings
    return QualityReport(
        (
            _check(
                "focus",
                m.focus,
                s.min_focus,
                True,
                "image is out of focus",
                f"sharpness {m.focus:.1f}",
                f"{s.min_focus:.1f}",
            ),
            _check(
                "underexposure",
                m.brightness,
                s.min_brightness,
                True,
                "image is too dark",
                f"brightness {m.brightness:.1f}",
                f"{s.min_brightness:.1f}",
            ),
            _check(
                "overexposure",
                m.brightness,
                s.max_brightness,
                False,
                "image is too bright",
                f"brightness {m.brightness:.1f}",
                f"{s.max_brightness:.1f}",
            ),
            _check(
                "clipping",
                m.clipped_fraction,
                s.max_clipped_fraction,
                False,
                "image is overexposed",
                f"{m.clipped_fraction:.1%} of pixels clipped,",
                f"{s.max_clipped_fraction:.1%}",
            ),
            _check(
                "glare",
                m.glare_fraction,
                s.max_glare_fraction,
                False,
                "too much glare",
                f"{m.glare_fraction:.1%} of pixels are specular reflections,",
                f"{s.max_glare_fraction:.1%}",
            ),
            _check(
                "lesion_contrast",
                m.lesion_contrast,
                s.min_lesion_contrast,
                True,
                "no lesion found",
                f"colour difference to the skin {m.lesion_contrast:.1f}",
                f"{s.min_lesion_contrast:.1f}",
            ),
            _check(
                "lesion_size",
                m.lesion_fraction,
                s.min_lesion_fraction,
                True,
                "lesion too small in frame",
                f"{m.lesion_fraction:.1%} of the image,",
                f"{s.min_lesion_fraction:.1%}",
                " (move closer)",
            ),
            _check(
                "lesion_border",
                m.lesion_border_fraction,
                s.max_lesion_border_fraction,
                False,
                "lesion runs off the frame",
                f"{m.lesion_border_fraction:.1%} of its outline is on the image edge,",
                f"{s.max_lesion_border_fraction:.1%}",
                " (centre it)",
            ),
        )
    )
