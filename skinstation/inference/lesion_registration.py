"""Aligning two captures of the same lesion, and side-by-side / overlay comparison images.

:func:`register` finds the similarity transform (rotation, uniform scale, shift) that maps the
``moving`` capture onto the ``fixed`` one, trying in turn:

``orb``
    ORB features matched across the two grey images (ratio test), then a RANSAC similarity
    fit (``cv2.estimateAffinePartial2D``); accepted with at least :data:`MIN_INLIERS` inliers
    and a scale within :data:`SCALE_RANGE`.
``ecc``
    Enhanced correlation coefficient maximisation (``cv2.findTransformECC``, Euclidean
    motion) on the blurred grey images, started from the mask-centroid shift; accepted when it
    converges with a correlation of at least :data:`MIN_ECC`.
``centroid``
    The shift between the two masks' centroids (no rotation): always available when both
    masks are non-empty, else the identity (``identity``).

Work is done on copies scaled to :data:`REGISTRATION_LONG_SIDE` pixels; the returned matrix is
in the full-size pixels of the two images.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

REGISTRATION_LONG_SIDE = 400
MIN_INLIERS = 12
SCALE_RANGE = (0.6, 1.7)
MIN_ECC = 0.6
RATIO_TEST = 0.8
FIXED_COLOUR = (0, 255, 255)
MOVING_COLOUR = (255, 0, 255)


@dataclass(frozen=True)
class Registration:
    """A transform from the moving capture's pixels to the fixed capture's pixels.

    Attributes:
        matrix: 2×3 affine matrix (a similarity): fixed = matrix @ (x, y, 1).
        method: ``orb``, ``ecc``, ``centroid`` or ``identity``.
        score: Inlier count (``orb``), correlation coefficient (``ecc``), else 0.
    """

    matrix: np.ndarray
    method: str
    score: float

    @property
    def scale(self) -> float:
        """Length of one moving-image pixel in fixed-image pixels."""
        return float(np.sqrt(abs(np.linalg.det(self.matrix[:, :2]))))

    def apply(self, points: np.ndarray) -> np.ndarray:
        """Map (N, 2) moving-image points (x, y) into the fixed image."""
        points = np.asarray(points, np.float64).reshape(-1, 2)
        mapped: np.ndarray = points @ self.matrix[:, :2].T + self.matrix[:, 2]
        return mapped


def _grey(image: np.ndarray, scale: float) -> np.ndarray:
    grey = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)
    if scale == 1.0:
        return grey
    size = (max(8, round(grey.shape[1] * scale)), max(8, round(grey.shape[0] * scale)))
    return cv2.resize(grey, size, interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)


def _to_full(matrix: np.ndarray, fixed_scale: float, moving_scale: float) -> np.ndarray:
    """Turn a matrix between the scaled copies into one between the full-size images."""
    full = np.asarray(matrix, np.float64).copy()
    full[:, :2] *= moving_scale / fixed_scale
    full[:, 2] /= fixed_scale
    return full


def _sane(matrix: np.ndarray | None) -> bool:
    if matrix is None or not np.all(np.isfinite(matrix)):
        return False
    scale = float(np.sqrt(abs(np.linalg.det(matrix[:, :2]))))
    return SCALE_RANGE[0] <= scale <= SCALE_RANGE[1]


def _orb(fixed: np.ndarray, moving: np.ndarray) -> tuple[np.ndarray, int] | None:
    orb = cv2.ORB.create(nfeatures=1000, edgeThreshold=15, patchSize=15)
    fixed_points, fixed_descriptors = orb.detectAndCompute(fixed, None)
    moving_points, moving_descriptors = orb.detectAndCompute(moving, None)
    if fixed_descriptors is None or moving_descriptors is None or len(moving_points) < 2:
        return None
    matcher = cv2.BFMatcher(cv2.NORM_HAMMING)
    pairs = matcher.knnMatch(moving_descriptors, fixed_descriptors, k=2)
    good = [p[0] for p in pairs if len(p) == 2 and p[0].distance < RATIO_TEST * p[1].distance]
    if len(good) < MIN_INLIERS:
        return None
    source = np.array([moving_points[m.queryIdx].pt for m in good], np.float32)
    target = np.array([fixed_points[m.trainIdx].pt for m in good], np.float32)
    matrix, inliers = cv2.estimateAffinePartial2D(source, target, method=cv2.RANSAC,
                                                  ransacReprojThreshold=3.0)
    count = int(inliers.sum()) if inliers is not None else 0
    if count < MIN_INLIERS or not _sane(matrix):
        return None
    return matrix, count


def _centroid(mask: np.ndarray | None, scale: float) -> np.ndarray | None:
    if mask is None or not mask.any():
        return None
    rows, cols = np.nonzero(mask)
    return np.array([cols.mean(), rows.mean()]) * scale


def _ecc(fixed: np.ndarray, moving: np.ndarray, start: np.ndarray) -> tuple[np.ndarray, float]:
    criteria = (cv2.TERM_CRITERIA_EPS | cv2.TERM_CRITERIA_COUNT, 100, 1e-5)
    if fixed.shape != moving.shape:
        moving = cv2.resize(moving, (fixed.shape[1], fixed.shape[0]))
    # findTransformECC warps the second image into the first's frame with the inverse map.
    initial = cv2.invertAffineTransform(start.astype(np.float32))
    score, warp = cv2.findTransformECC(
        fixed.astype(np.float32), moving.astype(np.float32), initial, cv2.MOTION_EUCLIDEAN,
        criteria,
    )
    return np.asarray(cv2.invertAffineTransform(warp)), float(score)


def register(
    fixed: np.ndarray,
    moving: np.ndarray,
    fixed_mask: np.ndarray | None = None,
    moving_mask: np.ndarray | None = None,
) -> Registration:
    """Find the transform mapping ``moving`` onto ``fixed`` (see the module docstring).

    Args:
        fixed: The reference capture, (H, W, 3) uint8 RGB.
        moving: The capture to align, (H', W', 3) uint8 RGB.
        fixed_mask: The reference lesion mask (for the centroid start and fallback).
        moving_mask: The moving capture's lesion mask.

    Returns:
        The registration; its matrix is in full-size pixels.
    """
    fixed_scale = min(1.0, REGISTRATION_LONG_SIDE / max(fixed.shape[:2]))
    moving_scale = min(1.0, REGISTRATION_LONG_SIDE / max(moving.shape[:2]))
    fixed_grey, moving_grey = _grey(fixed, fixed_scale), _grey(moving, moving_scale)
    found = _orb(fixed_grey, moving_grey)
    if found is not None:
        return Registration(_to_full(found[0], fixed_scale, moving_scale), "orb", found[1])
    fixed_centre = _centroid(fixed_mask, fixed_scale)
    moving_centre = _centroid(moving_mask, moving_scale)
    start = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
    if fixed_centre is not None and moving_centre is not None:
        start[:, 2] = fixed_centre - moving_centre
    if fixed_grey.shape == moving_grey.shape:
        try:
            matrix, score = _ecc(cv2.GaussianBlur(fixed_grey, (0, 0), 1.5),
                                 cv2.GaussianBlur(moving_grey, (0, 0), 1.5), start)
            if score >= MIN_ECC and _sane(matrix):
                return Registration(_to_full(matrix, fixed_scale, moving_scale), "ecc", score)
        except cv2.error:
            pass
    if fixed_centre is not None and moving_centre is not None:
        return Registration(_to_full(start, fixed_scale, moving_scale), "centroid", 0.0)
    return Registration(start, "identity", 0.0)


def warp_to_fixed(image: np.ndarray, registration: Registration,
                  shape: tuple[int, int]) -> np.ndarray:
    """Warp a moving-capture image or mask (uint8 or bool) into the fixed frame (H, W)."""
    height, width = shape
    source = image.astype(np.uint8) if image.dtype == bool else image
    flags = cv2.INTER_NEAREST if image.dtype == bool else cv2.INTER_LINEAR
    warped = cv2.warpAffine(source, registration.matrix.astype(np.float32), (width, height),
                            flags=flags, borderMode=cv2.BORDER_CONSTANT)
    return warped.astype(bool) if image.dtype == bool else warped


def _outline(canvas: np.ndarray, mask: np.ndarray | None, colour: tuple[int, int, int]) -> None:
    if mask is None or not mask.any():
        return
    contours, _ = cv2.findContours(mask.astype(np.uint8), cv2.RETR_EXTERNAL,
                                   cv2.CHAIN_APPROX_SIMPLE)
    thickness = max(1, round(max(canvas.shape[:2]) / 300))
    cv2.drawContours(canvas, contours, -1, colour, thickness)


def overlay(
    fixed: np.ndarray,
    moving: np.ndarray,
    registration: Registration,
    fixed_mask: np.ndarray | None = None,
    moving_mask: np.ndarray | None = None,
    alpha: float = 0.5,
) -> np.ndarray:
    """Blend the aligned moving capture over the fixed one, with both outlines drawn.

    The fixed capture's outline is cyan (:data:`FIXED_COLOUR`), the moving one's magenta
    (:data:`MOVING_COLOUR`), so growth shows as magenta outside cyan.

    Returns:
        An RGB uint8 image the size of ``fixed``.
    """
    shape = (fixed.shape[0], fixed.shape[1])
    warped = warp_to_fixed(moving, registration, shape)
    canvas = cv2.addWeighted(fixed, 1.0 - alpha, warped, alpha, 0.0)
    _outline(canvas, fixed_mask, FIXED_COLOUR)
    if moving_mask is not None:
        _outline(canvas, warp_to_fixed(moving_mask.astype(bool), registration, shape),
                 MOVING_COLOUR)
    return canvas


def side_by_side(
    first: np.ndarray,
    second: np.ndarray,
    first_mask: np.ndarray | None = None,
    second_mask: np.ndarray | None = None,
    gap: int = 4,
) -> np.ndarray:
    """The two captures next to each other at the same height, outlines drawn (RGB uint8)."""
    height = max(first.shape[0], second.shape[0])
    panels = []
    for image, mask, colour in ((first, first_mask, FIXED_COLOUR),
                                (second, second_mask, MOVING_COLOUR)):
        panel = image.copy()
        _outline(panel, mask, colour)
        if panel.shape[0] != height:
            width = round(panel.shape[1] * height / panel.shape[0])
            panel = cv2.resize(panel, (width, height), interpolation=cv2.INTER_LINEAR)
        panels.append(panel)
    spacer = np.full((height, gap, 3), 255, np.uint8)
    return np.hstack([panels[0], spacer, panels[1]])
