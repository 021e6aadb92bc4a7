"""Training-time augmentation of prepared (square, colour-normalised) uint8 images.

Dermoscopic images have no canonical orientation, so every rotation and flip is valid; scale
and colour jitter mimic other devices and exposures. Augmentation runs after
:func:`skinstation.inference.preprocessing.prepare`, so the station's preprocessing is exactly
the evaluation path (no augmentation there).
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np


@dataclass(frozen=True)
class AugmentConfig:
    """Ranges of the random transforms.

    Attributes:
        rotate: Rotate by a uniform angle in [-rotate, rotate] degrees.
        flip: Random horizontal and vertical flips.
        scale: Zoom factor drawn from [1 - scale, 1 + scale].
        translate: Shift by up to this fraction of the side.
        brightness: Multiply by a factor in [1 - b, 1 + b].
        contrast: Stretch around the mean by a factor in [1 - c, 1 + c].
        saturation: Scale HSV saturation by a factor in [1 - s, 1 + s].
        hue: Shift hue by up to this many degrees.
    """

    rotate: float = 180.0
    flip: bool = True
    scale: float = 0.15
    translate: float = 0.05
    brightness: float = 0.15
    contrast: float = 0.15
    saturation: float = 0.15
    hue: float = 5.0


def augment(image: np.ndarray, rng: np.random.Generator, config: AugmentConfig) -> np.ndarray:
    """Return a randomly transformed copy of a square RGB uint8 image (same size)."""
    size = image.shape[0]
    out = image
    if config.flip:
        if rng.random() < 0.5:
            out = out[:, ::-1]
        if rng.random() < 0.5:
            out = out[::-1, :]
    angle = float(rng.uniform(-config.rotate, config.rotate))
    factor = float(rng.uniform(1 - config.scale, 1 + config.scale))
    matrix = cv2.getRotationMatrix2D((size / 2, size / 2), angle, factor)
    matrix[:, 2] += rng.uniform(-config.translate, config.translate, size=2) * size
    out = cv2.warpAffine(
        np.ascontiguousarray(out), matrix, (size, size),
        flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT_101,
    )
    pixels = out.astype(np.float32)
    pixels *= rng.uniform(1 - config.brightness, 1 + config.brightness)
    mean = pixels.mean()
    pixels = (pixels - mean) * rng.uniform(1 - config.contrast, 1 + config.contrast) + mean
    out = np.clip(pixels, 0, 255).astype(np.uint8)
    if config.saturation or config.hue:
        hsv = cv2.cvtColor(out, cv2.COLOR_RGB2HSV).astype(np.float32)
        hsv[..., 0] = (hsv[..., 0] + rng.uniform(-config.hue, config.hue) / 2) % 180
        hsv[..., 1] *= rng.uniform(1 - config.saturation, 1 + config.saturation)
        out = cv2.cvtColor(np.clip(hsv, 0, 255).astype(np.uint8), cv2.COLOR_HSV2RGB)
    return out
