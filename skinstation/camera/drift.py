"""Hand motion and focus drift of a held dermatoscope, for the simulated one.

A dermatoscope held against the skin is never perfectly still: the picture wanders by a few
pixels, turns by a fraction of a degree and breathes in and out of focus, slowly and smoothly.
:class:`HandDrift` models that as a sum of slow sinusoids per component (periods of a few
seconds at 15 fps, random phases), fully determined by a seed, so a replayed session is
reproducible frame by frame.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

SHIFT_FRACTION = 0.003
"""Largest translation, as a fraction of the frame's long side (3.8 px at 1280×960)."""

MAX_ANGLE_DEGREES = 0.3
"""Largest rotation either way."""

BLUR_FRACTION = 0.0012
"""Largest Gaussian blur sigma, as a fraction of the long side (1.5 px at 1280×960)."""

PERIOD_FRAMES = (40.0, 160.0)
"""Range of the sinusoids' periods in frames (about 2.7 to 11 s at 15 fps)."""

WAVES = 3
"""Sinusoids summed per component."""


@dataclass(frozen=True)
class Pose:
    """Where the held scope is in one frame, relative to the still image.

    Attributes:
        dx: Horizontal shift in pixels.
        dy: Vertical shift in pixels.
        angle: Rotation about the frame centre in degrees (counter-clockwise).
        blur: Gaussian blur sigma in pixels (0: in focus).
    """

    dx: float
    dy: float
    angle: float
    blur: float


class _Wander:
    """A smooth signal in [-1, 1]: a normalised sum of slow sinusoids."""

    def __init__(self, rng: np.random.Generator) -> None:
        low, high = PERIOD_FRAMES
        self._periods = rng.uniform(low, high, WAVES)
        self._phases = rng.uniform(0.0, 2 * math.pi, WAVES)
        weights = rng.uniform(0.5, 1.0, WAVES)
        self._weights = weights / weights.sum()

    def at(self, frame: int) -> float:
        angles = 2 * math.pi * frame / self._periods + self._phases
        return float(np.dot(self._weights, np.sin(angles)))


class HandDrift:
    """Deterministic, smooth motion and focus drift of a dermatoscope held on one lesion.

    Args:
        seed: Any integers; the same seed gives the same drift, frame by frame.
    """

    def __init__(self, *seed: int) -> None:
        rng = np.random.default_rng(list(seed) or [0])
        self._x, self._y, self._angle, self._blur = (_Wander(rng) for _ in range(4))

    def pose(self, frame: int, width: int, height: int) -> Pose:
        """The pose in frame number ``frame`` (0-based) of a ``width``×``height`` picture."""
        side = max(width, height)
        shift = SHIFT_FRACTION * side
        return Pose(
            dx=shift * self._x.at(frame),
            dy=shift * self._y.at(frame),
            angle=MAX_ANGLE_DEGREES * self._angle.at(frame),
            blur=BLUR_FRACTION * side * (0.5 + 0.5 * self._blur.at(frame)),
        )

    def apply(self, rgb: np.ndarray, frame: int) -> np.ndarray:
        """The still ``rgb`` as seen in frame ``frame``: shifted, turned and (de)focused."""
        height, width = rgb.shape[:2]
        return apply_pose(rgb, self.pose(frame, width, height))


def apply_pose(rgb: np.ndarray, pose: Pose) -> np.ndarray:
    """Warp ``rgb`` by ``pose`` (edges mirrored, as skin continues past the frame) and blur it."""
    height, width = rgb.shape[:2]
    matrix = cv2.getRotationMatrix2D((width / 2, height / 2), pose.angle, 1.0)
    matrix[:, 2] += (pose.dx, pose.dy)
    moved = cv2.warpAffine(rgb, matrix, (width, height), flags=cv2.INTER_LINEAR,
                           borderMode=cv2.BORDER_REFLECT_101)
    if pose.blur >= 0.05:
        moved = cv2.GaussianBlur(moved, (0, 0), pose.blur)
    return np.ascontiguousarray(moved)
