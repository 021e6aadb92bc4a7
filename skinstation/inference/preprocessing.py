"""Image preprocessing shared by training, evaluation, the station and the engine.

One function, :func:`prepare`, turns a decoded RGB image into the model's square input image;
:func:`to_model_input` normalises it for the network. Both read a :class:`PreprocessConfig`,
which is saved inside every model file so the station never guesses how a model was trained.

Steps, in order (each is a public function, testable on its own):

1. orientation: EXIF transpose when decoding (:func:`decode_image`);
2. square: centre-crop, reflect-pad or stretch to a square (:func:`to_square`);
3. scale: optional zoom into the centre, then resize to ``size`` (:func:`zoom`, :func:`resize`);
4. optional rotation of the lesion's long axis to horizontal (:func:`canonical_rotation`);
5. hair removal: morphological black-hat + inpainting (:func:`remove_hair`);
6. noise removal: median, bilateral or non-local means (:func:`denoise`);
7. colour constancy: Shades of Gray (:func:`shades_of_gray`);
8. brightness: gamma towards a target mean luminance (:func:`normalise_brightness`).
"""

from __future__ import annotations

import dataclasses
import io
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import cv2
import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class ImageDecodeError(ValueError):
    """An image file or buffer could not be decoded; the message names the source."""


@dataclass(frozen=True)
class PreprocessConfig:
    """How an image becomes model input. Stored in the model file.

    Attributes:
        size: Side of the square model input, in pixels.
        square: ``crop`` (centre crop), ``pad`` (reflect pad) or ``stretch``.
        zoom: Fraction of the square kept around the centre (1.0 keeps everything).
        canonical_rotation: Rotate the lesion's principal axis to horizontal.
        hair_removal: Remove dark hairs by black-hat filtering and inpainting.
        hair_kernel: Black-hat structuring element size at ``size`` resolution (odd).
        hair_threshold: Black-hat response (0-255) above which a pixel counts as hair.
        denoise: ``none``, ``median``, ``bilateral`` or ``nlmeans``.
        color_constancy: ``shades_of_gray`` or ``none``.
        sog_power: Minkowski norm of Shades of Gray (1 = grey world, large = max-RGB).
        brightness_target: Target mean luminance 0-255 reached by a gamma curve; None = off.
        mean: Per-channel mean subtracted after scaling to 0-1.
        std: Per-channel standard deviation divided by.
    """

    size: int = 224
    square: Literal["crop", "pad", "stretch"] = "crop"
    zoom: float = 1.0
    canonical_rotation: bool = False
    hair_removal: bool = True
    hair_kernel: int = 9
    hair_threshold: int = 12
    denoise: Literal["none", "median", "bilateral", "nlmeans"] = "none"
    color_constancy: Literal["shades_of_gray", "none"] = "shades_of_gray"
    sog_power: float = 6.0
    brightness_target: float | None = None
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD

    def __post_init__(self) -> None:
        if self.size < 16:
            raise ValueError(f"size must be >= 16, got {self.size}")
        if self.square not in ("crop", "pad", "stretch"):
            raise ValueError(f"square must be crop, pad or stretch, got {self.square!r}")
        if not 0.1 <= self.zoom <= 1.0:
            raise ValueError(f"zoom must be within 0.1..1.0, got {self.zoom}")
        if self.denoise not in ("none", "median", "bilateral", "nlmeans"):
            raise ValueError(f"unknown denoise method {self.denoise!r}")
        if self.color_constancy not in ("shades_of_gray", "none"):
            raise ValueError(f"unknown colour constancy {self.color_constancy!r}")
        if self.hair_kernel < 3 or self.hair_kernel % 2 == 0:
            raise ValueError(f"hair_kernel must be odd and >= 3, got {self.hair_kernel}")
        if not self.sog_power > 0:
            raise ValueError(f"sog_power must be > 0, got {self.sog_power}")

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-ready dict (stored in model files)."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> PreprocessConfig:
        """Rebuild a config from :meth:`to_dict` output; unknown keys are an error."""
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"unknown preprocessing option(s): {', '.join(sorted(unknown))}")
        values = dict(data)
        for key in ("mean", "std"):
            if key in values:
                values[key] = tuple(float(v) for v in values[key])
        return cls(**values)


def decode_image(source: str | Path | bytes, name: str | None = None) -> np.ndarray:
    """Decode an image file or buffer to RGB uint8, applying its EXIF orientation.

    Args:
        source: A path or the encoded bytes.
        name: Name used in error messages for byte sources.

    Returns:
        An (H, W, 3) uint8 RGB array.

    Raises:
        ImageDecodeError: If the file is missing, truncated or not an image.
    """
    label = name or (str(source) if not isinstance(source, bytes) else "<image bytes>")
    try:
        handle = io.BytesIO(source) if isinstance(source, bytes) else open(source, "rb")  # noqa: SIM115
    except OSError as exc:
        raise ImageDecodeError(f"cannot read image {label}: {exc.strerror or exc}") from exc
    try:
        with handle, Image.open(handle) as image:
            image.load()
            oriented = ImageOps.exif_transpose(image) or image
            rgb = np.asarray(oriented.convert("RGB"))
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise ImageDecodeError(f"cannot decode image {label}: {exc}") from exc
    if rgb.ndim != 3 or rgb.shape[0] < 8 or rgb.shape[1] < 8:
        raise ImageDecodeError(f"image {label} is too small: {rgb.shape[1]}x{rgb.shape[0]}")
    return np.ascontiguousarray(rgb)


def to_square(image: np.ndarray, mode: str = "crop") -> np.ndarray:
    """Make an image square by centre crop, reflect padding or stretching."""
    height, width = image.shape[:2]
    if height == width:
        return image
    side_min, side_max = min(height, width), max(height, width)
    if mode == "crop":
        top, left = (height - side_min) // 2, (width - side_min) // 2
        return image[top : top + side_min, left : left + side_min]
    if mode == "pad":
        pad_y, pad_x = side_max - height, side_max - width
        return cv2.copyMakeBorder(
            image, pad_y // 2, pad_y - pad_y // 2, pad_x // 2, pad_x - pad_x // 2,
            cv2.BORDER_REFLECT_101,
        )
    if mode == "stretch":
        return cv2.resize(image, (side_max, side_max), interpolation=cv2.INTER_LINEAR)
    raise ValueError(f"unknown square mode {mode!r}")


def zoom(image: np.ndarray, fraction: float) -> np.ndarray:
    """Keep the central ``fraction`` of each side (1.0 returns the image unchanged)."""
    if fraction >= 1.0:
        return image
    height, width = image.shape[:2]
    new_h, new_w = max(1, round(height * fraction)), max(1, round(width * fraction))
    top, left = (height - new_h) // 2, (width - new_w) // 2
    return image[top : top + new_h, left : left + new_w]


def resize(image: np.ndarray, size: int) -> np.ndarray:
    """Resize to ``size``×``size`` (area averaging when shrinking, bicubic when enlarging)."""
    if image.shape[0] == size and image.shape[1] == size:
        return image
    shrinking = image.shape[0] > size
    interpolation = cv2.INTER_AREA if shrinking else cv2.INTER_CUBIC
    return cv2.resize(image, (size, size), interpolation=interpolation)


def lesion_mask(image: np.ndarray) -> np.ndarray:
    """Rough lesion mask: pixels darker than Otsu's threshold of a blurred grey image."""
    grey = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)
    grey = cv2.GaussianBlur(grey, (0, 0), max(1.0, image.shape[0] / 64))
    _, mask = cv2.threshold(grey, 0, 255, cv2.THRESH_BINARY_INV + cv2.THRESH_OTSU)
    return mask


def principal_angle(mask: np.ndarray) -> float:
    """Angle in degrees of the mask's principal axis (0 = horizontal, counter-clockwise)."""
    moments = cv2.moments(mask, binaryImage=True)
    if moments["m00"] == 0:
        return 0.0
    mu20, mu02, mu11 = moments["mu20"], moments["mu02"], moments["mu11"]
    return float(-0.5 * np.degrees(np.arctan2(2 * mu11, mu20 - mu02)))


def canonical_rotation(image: np.ndarray) -> np.ndarray:
    """Rotate the image so the lesion's long axis is horizontal (reflecting at the borders)."""
    angle = principal_angle(lesion_mask(image))
    if abs(angle) < 0.5:
        return image
    height, width = image.shape[:2]
    matrix = cv2.getRotationMatrix2D((width / 2, height / 2), -angle, 1.0)
    return cv2.warpAffine(image, matrix, (width, height), borderMode=cv2.BORDER_REFLECT_101)


def hair_mask(image: np.ndarray, kernel: int = 9, threshold: int = 12) -> np.ndarray:
    """Mask (0/255) of thin dark structures found by a morphological black-hat filter."""
    grey = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)
    element = cv2.getStructuringElement(cv2.MORPH_CROSS, (kernel, kernel))
    blackhat = cv2.morphologyEx(grey, cv2.MORPH_BLACKHAT, element)
    _, mask = cv2.threshold(blackhat, threshold, 255, cv2.THRESH_BINARY)
    return cv2.dilate(mask, np.ones((3, 3), np.uint8), iterations=1)


def remove_hair(image: np.ndarray, kernel: int = 9, threshold: int = 12) -> np.ndarray:
    """Inpaint the pixels of :func:`hair_mask` (Telea's method)."""
    mask = hair_mask(image, kernel, threshold)
    if not mask.any():
        return image
    return cv2.inpaint(image, mask, 3, cv2.INPAINT_TELEA)


def denoise(image: np.ndarray, method: str) -> np.ndarray:
    """Remove sensor noise with the named method (``none`` returns the image)."""
    if method == "none":
        return image
    if method == "median":
        return cv2.medianBlur(image, 3)
    if method == "bilateral":
        return cv2.bilateralFilter(image, 5, 30, 5)
    if method == "nlmeans":
        return cv2.fastNlMeansDenoisingColored(image, None, 5, 5, 5, 15)
    raise ValueError(f"unknown denoise method {method!r}")


def shades_of_gray(image: np.ndarray, power: float = 6.0) -> np.ndarray:
    """Shades of Gray colour constancy (Finlayson & Trezzi 2004).

    Estimates the illuminant as the Minkowski ``power``-mean of each channel and rescales the
    channels so the estimate becomes neutral grey, keeping the overall brightness.

    Both per-pixel steps go through 256-entry tables (the image is uint8), which gives the
    same bytes as computing ``(v / 255) ** power`` and ``v / 255 × gain × 255`` per pixel in
    float32, at less than half the cost.

    Raises:
        ValueError: If the image is not (H, W, 3) uint8 or ``power`` is not positive.
    """
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError("shades of gray needs an (H, W, 3) uint8 RGB image, got "
                         f"{image.shape} {image.dtype}")
    if not power > 0:
        raise ValueError(f"shades of gray power must be > 0, got {power}")
    levels = np.arange(256, dtype=np.float32) / 255.0
    powered = np.power(levels, power)[image]
    illuminant = np.power(np.mean(powered, axis=(0, 1)), 1.0 / power)
    norm = float(np.sqrt(np.sum(illuminant**2)))
    if norm < 1e-6:
        return image
    gains = (1.0 / np.sqrt(3.0)) / (illuminant / norm)
    tables = np.clip(levels[:, None] * gains * 255.0, 0, 255).astype(np.uint8)  # (256, 3)
    return cv2.LUT(image, np.ascontiguousarray(tables.reshape(256, 1, 3)))


def normalise_brightness(image: np.ndarray, target: float) -> np.ndarray:
    """Apply the gamma that brings the mean luminance to ``target`` (0-255)."""
    mean = float(cv2.cvtColor(image, cv2.COLOR_RGB2GRAY).mean())
    if mean < 1.0 or mean > 254.0:
        return image
    gamma = np.log(target / 255.0) / np.log(mean / 255.0)
    table = np.clip(((np.arange(256) / 255.0) ** gamma) * 255.0, 0, 255).astype(np.uint8)
    return cv2.LUT(image, table)


def prepare(image: np.ndarray, config: PreprocessConfig) -> np.ndarray:
    """Run every configured step: decoded RGB uint8 in, ``size``×``size`` RGB uint8 out."""
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError(f"expected an (H, W, 3) uint8 RGB image, got {image.shape} {image.dtype}")
    out = zoom(to_square(image, config.square), config.zoom)
    out = resize(out, config.size)
    if config.canonical_rotation:
        out = canonical_rotation(out)
    if config.hair_removal:
        out = remove_hair(out, config.hair_kernel, config.hair_threshold)
    out = denoise(out, config.denoise)
    if config.color_constancy == "shades_of_gray":
        out = shades_of_gray(out, config.sog_power)
    if config.brightness_target is not None:
        out = normalise_brightness(out, config.brightness_target)
    return np.ascontiguousarray(out)


def to_model_input(prepared: np.ndarray, config: PreprocessConfig) -> np.ndarray:
    """Scale a prepared uint8 image to 0-1, normalise per channel and return (3, H, W) float32."""
    scaled = prepared.astype(np.float32) / 255.0
    pixels = (scaled - np.asarray(config.mean, np.float32)) / np.asarray(config.std, np.float32)
    return np.ascontiguousarray(pixels.transpose(2, 0, 1))


def preprocess(image: np.ndarray, config: PreprocessConfig) -> np.ndarray:
    """:func:`prepare` then :func:`to_model_input`: RGB uint8 in, (3, size, size) float32 out."""
    return to_model_input(prepare(image, config), config)
