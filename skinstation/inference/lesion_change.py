"""Measurements of one lesion capture and the change between two captures of the same lesion.

:func:`measure_lesion` takes an RGB image and its lesion mask (from
:func:`~skinstation.inference.segmentation.segment_lesion`) and returns a
:class:`LesionMeasurement`: area and maximum (Feret) diameter in pixels, and in mm² / mm when the
pixel scale is known (a dermatoscope has a fixed field of view: scale = field width in mm /
image width in pixels; keep it ``None`` when unknown), asymmetry, border irregularity and
CIE L*a*b* colour statistics. :func:`compare` turns two measurements into a
:class:`LesionChange` with "changed" flags. Registration and the overlay image are in
:mod:`skinstation.inference.lesion_registration`.

Change thresholds
-----------------
A measurement changes between two captures even when the lesion does not: the dermatoscope is
placed again, pressed and lit differently, and the segmentation moves with it. The thresholds
are set above that noise, measured by ``bench/bench_segmentation.py`` on HAM10000 lesions
photographed more than once (same ``lesion_id``; consecutive images of a lesion form a pair:
2,545 pairs of 1,956 lesions over all splits). HAM10000 mixes overview and close-up images of
one lesion (a quarter of the pairs differ in scale by more than 1.25×), so sizes are compared
after correcting by the registration's scale, and the thresholds come from the 1,142 pairs
that ORB registered (scale measured). On 2026-12-04 the 95th percentiles of the absolute
same-lesion differences there were: relative area 0.515, relative maximum diameter 0.292,
lesion-minus-skin colour ΔE 10.2, asymmetry 0.093 (medians 0.068, 0.026, 2.9, 0.009); the
experts' own reference masks differ in area by 0.33 at the 95th percentile on the same pairs.
Each threshold is rounded up from its 95th percentile, so about 1 in 20 repeat captures of an
unchanged lesion is flagged per measure (some flag on 11% of those pairs). The pairs
are an upper bound on capture noise: some are follow-up images months apart of lesions that
may really have changed.

This is deliberately conservative, and it is a prompt to look, not a diagnosis: the ABCDE
rule's "E" (Abbasi et al., JAMA 2004: "evolving" in size, shape or colour) and sequential
digital dermoscopy (Menzies et al., Arch Dermatol 2001; Kittler et al., Arch Dermatol 2006)
treat any real change of a melanocytic lesion as a reason for review. With a fixed
dermatoscope and the lesion centred, the noise is smaller than in HAM10000's mixed pairs.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from skinstation.inference.segmentation import remove_hair

# See the module docstring: each is rounded up from the 95th percentile of same-lesion
# differences on HAM10000 (bench/bench_segmentation.py, 2026-12-04).
AREA_CHANGE_THRESHOLD = 0.55
"""Relative area change |b − a| / a above which the area is flagged as changed."""
DIAMETER_CHANGE_THRESHOLD = 0.3
"""Relative maximum-diameter change above which the diameter is flagged as changed."""
COLOUR_CHANGE_THRESHOLD = 11.0
"""CIE76 ΔE between lesion-minus-skin mean colours above which the colour is flagged."""
ASYMMETRY_CHANGE_THRESHOLD = 0.10
"""Absolute asymmetry change (0..1 scale) above which the shape is flagged as changed."""
COLOUR_CLUSTER_DELTA_E = 15.0
"""Colours closer than this ΔE count as one colour when counting colour clusters."""
COLOUR_CLUSTER_MIN_SHARE = 0.05
"""A colour must cover at least this share of the lesion to be counted."""
COLOUR_SAMPLE = 2000
SKIN_RING_FRACTION = 0.1


@dataclass(frozen=True)
class LesionMeasurement:
    """Measurements of one lesion capture.

    Attributes:
        area_px: Lesion area in pixels of the image measured.
        diameter_px: Maximum Feret diameter (longest distance between two outline points).
        area_mm2: Area in mm², or None when the pixel scale is unknown.
        diameter_mm: Maximum diameter in mm, or None when the pixel scale is unknown.
        asymmetry: Mean non-overlap of the mask and its mirror image about each principal
            axis through the centroid, as a fraction of the area (0 for an ellipse).
        border_irregularity: Perimeter² / (4π area): 1 for a disc, larger for ragged borders.
        lab_mean: Mean CIE L*a*b* colour of the lesion (L 0..100).
        skin_lab_mean: Mean L*a*b* colour of the skin in a ring around the lesion (the whole
            image outside the lesion when the ring is empty).
        lab_std: Standard deviation of each L*a*b* channel inside the lesion.
        colour_count: Number of distinct colours (clusters at least
            :data:`COLOUR_CLUSTER_DELTA_E` apart, each covering at least
            :data:`COLOUR_CLUSTER_MIN_SHARE` of the lesion).
        centroid: Lesion centroid (x, y) in pixels.
    """

    area_px: int
    diameter_px: float
    area_mm2: float | None
    diameter_mm: float | None
    asymmetry: float
    border_irregularity: float
    lab_mean: tuple[float, float, float]
    skin_lab_mean: tuple[float, float, float]
    lab_std: tuple[float, float, float]
    colour_count: int
    centroid: tuple[float, float]


@dataclass(frozen=True)
class LesionChange:
    """The change between an earlier (``before``) and a later (``after``) measurement.

    Relative changes are (after − before) / before; they use mm when both captures have a
    scale, otherwise pixels corrected by ``after_scale`` (see :func:`compare`).

    Attributes:
        area_change: Relative area change (0.5 = grew by half).
        diameter_change: Relative maximum-diameter change.
        colour_delta_e: CIE76 ΔE between the lesion colours relative to the skin around them
            (lesion mean − skin mean), so a change of lighting or white balance that shifts
            lesion and skin alike does not count.
        asymmetry_change: after.asymmetry − before.asymmetry.
        colour_count_change: after.colour_count − before.colour_count.
        area_changed: |area_change| above :data:`AREA_CHANGE_THRESHOLD`.
        diameter_changed: |diameter_change| above :data:`DIAMETER_CHANGE_THRESHOLD`.
        colour_changed: colour_delta_e above :data:`COLOUR_CHANGE_THRESHOLD`.
        asymmetry_changed: |asymmetry_change| above :data:`ASYMMETRY_CHANGE_THRESHOLD`.
    """

    area_change: float
    diameter_change: float
    colour_delta_e: float
    asymmetry_change: float
    colour_count_change: int
    area_changed: bool
    diameter_changed: bool
    colour_changed: bool
    asymmetry_changed: bool

    @property
    def changed(self) -> bool:
        """True if any measure is flagged as changed."""
        return self.area_changed or self.diameter_changed or self.colour_changed or (
            self.asymmetry_changed
        )

    @property
    def flags(self) -> tuple[str, ...]:
        """Names of the flagged measures: ``area``, ``diameter``, ``colour``, ``asymmetry``."""
        names = ("area", "diameter", "colour", "asymmetry")
        values = (self.area_changed, self.diameter_changed, self.colour_changed,
                  self.asymmetry_changed)
        return tuple(name for name, value in zip(names, values, strict=True) if value)


def _largest_contour(mask: np.ndarray) -> np.ndarray | None:
    contours, _ = cv2.findContours(mask.astype(np.uint8), cv2.RETR_EXTERNAL,
                                   cv2.CHAIN_APPROX_NONE)
    return max(contours, key=cv2.contourArea) if contours else None


def feret_diameter(mask: np.ndarray) -> float:
    """Maximum Feret diameter in pixels: the longest distance between two hull points."""
    points = np.argwhere(mask)
    if len(points) == 0:
        return 0.0
    hull = cv2.convexHull(points[:, ::-1].astype(np.float32)).reshape(-1, 2)
    if len(hull) < 2:
        return 1.0
    distances = np.linalg.norm(hull[:, None, :] - hull[None, :, :], axis=2)
    return float(distances.max()) + 1.0  # pixel centres to pixel edges


def asymmetry(mask: np.ndarray) -> float:
    """Mean non-overlap of the mask with its mirror about each principal axis (0..1)."""
    points = np.argwhere(mask)[:, ::-1].astype(np.float64)
    if len(points) < 3:
        return 0.0
    centre = points.mean(axis=0)
    _, vectors = np.linalg.eigh(np.cov((points - centre).T))
    height, width = mask.shape
    scores = []
    for axis in vectors.T:
        # Reflection about the line through the centre along ``axis``: x' = 2 (x·a) a − x.
        reflect = 2 * np.outer(axis, axis) - np.eye(2)
        matrix = np.hstack([reflect, (centre - reflect @ centre)[:, None]]).astype(np.float32)
        mirrored = cv2.warpAffine(mask.astype(np.uint8), matrix, (width, height),
                                  flags=cv2.INTER_NEAREST).astype(bool)
        scores.append(float((mask ^ mirrored).sum()) / (2 * float(mask.sum())))
    return float(np.mean(scores))


def border_irregularity(mask: np.ndarray) -> float:
    """Perimeter² / (4π area) of the largest outline (1 for a disc, 0 for an empty mask)."""
    contour = _largest_contour(mask)
    if contour is None:
        return 0.0
    area = max(float(cv2.contourArea(contour)), 1.0)
    # The outline through pixel corners zig-zags (a digital disc would score 1.14): measure
    # the perimeter of its polygon simplified to within one pixel instead.
    polygon = cv2.approxPolyDP(contour, 1.0, closed=True)
    perimeter = float(cv2.arcLength(polygon, closed=True))
    return perimeter**2 / (4 * np.pi * area)


def colour_count(lab_pixels: np.ndarray) -> int:
    """Number of distinct colours among L*a*b* pixels (see :class:`LesionMeasurement`)."""
    if len(lab_pixels) < 10:
        return 1 if len(lab_pixels) else 0
    step = max(1, len(lab_pixels) // COLOUR_SAMPLE)
    sample = np.ascontiguousarray(lab_pixels[::step], dtype=np.float32)
    clusters = min(6, len(sample))
    cv2.setRNGSeed(0)
    criteria = (cv2.TERM_CRITERIA_EPS + cv2.TERM_CRITERIA_MAX_ITER, 20, 0.5)
    _, labels, centres = cv2.kmeans(sample, clusters, None, criteria, 2, cv2.KMEANS_PP_CENTERS)
    shares = np.bincount(labels.ravel(), minlength=clusters) / len(sample)
    kept: list[tuple[np.ndarray, float]] = []
    for index in np.argsort(-shares):
        centre, share = centres[index], float(shares[index])
        for position, (other, other_share) in enumerate(kept):
            if np.linalg.norm(centre - other) < COLOUR_CLUSTER_DELTA_E:
                kept[position] = (other, other_share + share)
                break
        else:
            kept.append((centre, share))
    return sum(1 for _, share in kept if share >= COLOUR_CLUSTER_MIN_SHARE)


def measure_lesion(
    image: np.ndarray, mask: np.ndarray, mm_per_pixel: float | None = None
) -> LesionMeasurement:
    """Measure a lesion.

    Args:
        image: (H, W, 3) uint8 RGB.
        mask: (H, W) boolean lesion mask.
        mm_per_pixel: The image's pixel size in mm (the dermatoscope's field-of-view width in
            mm divided by the image width), or None if unknown.

    Returns:
        The measurements; colour statistics are taken with hairs painted over.

    Raises:
        ValueError: If the shapes do not match or the scale is not positive.
    """
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError(f"expected an (H, W, 3) uint8 RGB image, got {image.shape} {image.dtype}")
    if mask.shape != image.shape[:2]:
        raise ValueError(f"mask {mask.shape} does not match image {image.shape[:2]}")
    if mm_per_pixel is not None and not mm_per_pixel > 0:
        raise ValueError(f"mm_per_pixel must be positive, got {mm_per_pixel}")
    mask = mask.astype(bool)
    area = int(mask.sum())
    diameter = feret_diameter(mask)
    if area:
        lab = cv2.cvtColor(remove_hair(image).astype(np.float32) / 255.0, cv2.COLOR_RGB2LAB)
        pixels = lab[mask]
        mean, std = pixels.mean(axis=0), pixels.std(axis=0)
        ring_size = max(3, round(max(mask.shape) * SKIN_RING_FRACTION)) | 1
        around = cv2.dilate(mask.astype(np.uint8), cv2.getStructuringElement(
            cv2.MORPH_ELLIPSE, (ring_size, ring_size))).astype(bool)
        ring = around & ~mask if (around & ~mask).any() else ~mask
        skin = lab[ring].mean(axis=0) if ring.any() else mean
        rows, cols = np.nonzero(mask)
        centroid = (float(cols.mean()), float(rows.mean()))
    else:
        pixels = np.zeros((0, 3), np.float32)
        mean = std = skin = np.zeros(3)
        centroid = (float("nan"), float("nan"))
    return LesionMeasurement(
        area_px=area,
        diameter_px=diameter,
        area_mm2=None if mm_per_pixel is None else area * mm_per_pixel**2,
        diameter_mm=None if mm_per_pixel is None else diameter * mm_per_pixel,
        asymmetry=asymmetry(mask),
        border_irregularity=border_irregularity(mask),
        lab_mean=(float(mean[0]), float(mean[1]), float(mean[2])),
        skin_lab_mean=(float(skin[0]), float(skin[1]), float(skin[2])),
        lab_std=(float(std[0]), float(std[1]), float(std[2])),
        colour_count=colour_count(pixels),
        centroid=centroid,
    )


def _relative(before: float, after: float) -> float:
    return (after - before) / before if before > 0 else (0.0 if after == before else float("inf"))


def compare(
    before: LesionMeasurement, after: LesionMeasurement, after_scale: float = 1.0
) -> LesionChange:
    """The change from ``before`` to ``after``, flagged against the module's thresholds.

    Args:
        before: The earlier measurement.
        after: The later measurement.
        after_scale: Length of one ``after`` pixel in ``before`` pixels, used when either
            capture has no mm scale: the scale of the registration of ``after`` onto
            ``before`` (:attr:`~skinstation.inference.lesion_registration.Registration.scale`)
            corrects for a different magnification. 1.0 assumes the same magnification.
    """
    scaled = before.area_mm2 is not None and after.area_mm2 is not None
    if scaled:
        area = _relative(before.area_mm2 or 0.0, after.area_mm2 or 0.0)
        diameter = _relative(before.diameter_mm or 0.0, after.diameter_mm or 0.0)
    else:
        area = _relative(before.area_px, after.area_px * after_scale**2)
        diameter = _relative(before.diameter_px, after.diameter_px * after_scale)
    contrast_before = np.subtract(before.lab_mean, before.skin_lab_mean)
    contrast_after = np.subtract(after.lab_mean, after.skin_lab_mean)
    delta_e = float(np.linalg.norm(contrast_after - contrast_before))
    shape = after.asymmetry - before.asymmetry
    return LesionChange(
        area_change=area,
        diameter_change=diameter,
        colour_delta_e=delta_e,
        asymmetry_change=shape,
        colour_count_change=after.colour_count - before.colour_count,
        area_changed=abs(area) > AREA_CHANGE_THRESHOLD,
        diameter_changed=abs(diameter) > DIAMETER_CHANGE_THRESHOLD,
        colour_changed=delta_e > COLOUR_CHANGE_THRESHOLD,
        asymmetry_changed=abs(shape) > ASYMMETRY_CHANGE_THRESHOLD,
    )
