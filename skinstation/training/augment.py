"""Training-time augmentation of prepared (square, colour-normalised) uint8 images.

Dermoscopic images have no canonical orientation, so every rotation and flip is valid; scale
and colour jitter mimic other devices and exposures. Augmentation runs after
:func:`skinstation.inference.preprocessing.prepare`, so the station's preprocessing is exactly
the evaluation path (no augmentation there).

The colour transforms are what other clinics' cameras and software do to an image: saturation,
hue, gamma, brightness/contrast and per-channel white-balance casts, then optionally blur and
JPEG re-encoding. Shades-of-gray colour constancy is part of the station's preprocessing, so
after the colour transforms it is applied again (``colour_constancy_power``): the network
learns on what the station would make of a shifted image, not on shifts the station removes.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from skinstation.inference.preprocessing import shades_of_gray


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
        gamma: Raise to a power ``exp(u)``, ``u`` uniform in [-gamma, gamma] (0 = off).
        cast: Multiply each channel by ``exp(u)``, ``u`` uniform in [-cast, cast] (0 = off).
        blur: Probability of a Gaussian blur (sigma 0.3-1.5 px).
        jpeg: Probability of a JPEG re-encoding (quality 25-90).
    """

    rotate: float = 180.0
    flip: bool = True
    scale: float = 0.15
    translate: float = 0.05
    brightness: float = 0.15
    contrast: float = 0.15
    saturation: float = 0.15
    hue: float = 5.0
    gamma: float = 0.0
    cast: float = 0.0
    blur: float = 0.0
    jpeg: float = 0.0


COLOUR_ROBUST = AugmentConfig(saturation=0.65, hue=22.0, brightness=0.2, contrast=0.2,
                              gamma=0.4, cast=0.12, blur=0.2, jpeg=0.2)
"""The colour-robust recipe: covers saturation x0.6-1.6, hue +-0.05 turn, gamma 0.7-1.4 and
the white-balance casts of the robustness evaluation, with some margin."""

BASELINE_JITTER = AugmentConfig(brightness=0.2, contrast=0.2, saturation=0.2, hue=18.0)
"""The plain baseline's colour jitter (``bench/bench_baseline.py``: torchvision
``ColorJitter(0.2, 0.2, 0.2, 0.05)``, hue 0.05 of a turn = 18 degrees), with the station's
geometry; no gamma, casts, blur or JPEG."""


def augment(image: np.ndarray, rng: np.random.Generator, config: AugmentConfig,
            colour_constancy_power: float | None = None) -> np.ndarray:
    """Return a randomly transformed copy of a square RGB uint8 image (same size).

    Args:
        image: Prepared square RGB uint8 image.
        rng: Random source (one per image makes a batch independent of its order).
        config: Transform ranges.
        colour_constancy_power: Shades-of-gray power re-applied after the colour
            transforms (the station's preprocessing); None leaves colours as transformed.
    """
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
    if config.gamma:
        pixels = 255.0 * (pixels / 255.0) ** float(np.exp(rng.uniform(-config.gamma, config.gamma)))
    if config.cast:
        pixels *= np.exp(rng.uniform(-config.cast, config.cast, size=3)).astype(np.float32)
    pixels *= rng.uniform(1 - config.brightness, 1 + config.brightness)
    mean = pixels.mean()
    pixels = (pixels - mean) * rng.uniform(1 - config.contrast, 1 + config.contrast) + mean
    out = np.clip(pixels, 0, 255).astype(np.uint8)
    if config.saturation or config.hue:
        hsv = cv2.cvtColor(out, cv2.COLOR_RGB2HSV).astype(np.float32)
        hsv[..., 0] = (hsv[..., 0] + rng.uniform(-config.hue, config.hue) / 2) % 180
        hsv[..., 1] *= rng.uniform(1 - config.saturation, 1 + config.saturation)
        out = cv2.cvtColor(np.clip(hsv, 0, 255).astype(np.uint8), cv2.COLOR_HSV2RGB)
    if config.blur and rng.random() < config.blur:
        out = cv2.GaussianBlur(out, (0, 0), float(rng.uniform(0.3, 1.5)))
    if config.jpeg and rng.random() < config.jpeg:
        out = jpeg_roundtrip(out, int(rng.integers(25, 91)))
    if colour_constancy_power is not None:
        out = shades_of_gray(out, colour_constancy_power)
    return out


def jpeg_roundtrip(image: np.ndarray, quality: int) -> np.ndarray:
    """Encode an RGB uint8 image as JPEG at ``quality`` and decode it again."""
    ok, encoded = cv2.imencode(".jpg", cv2.cvtColor(image, cv2.COLOR_RGB2BGR),
                               [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise ValueError("JPEG encoding failed")
    return cv2.cvtColor(cv2.imdecode(encoded, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
