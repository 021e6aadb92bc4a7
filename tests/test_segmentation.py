"""Lesion segmentation on real HAM10000 images against their reference masks."""

from __future__ import annotations

import time
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from skinstation.inference.preprocessing import decode_image
from skinstation.inference.segmentation import dice, iou, read_mask, segment_lesion

# Real HAM10000 images (one per class, plus one with a palette mask) and the Dice measured on
# each on 2026-12-04; a floor 0.05 below it leaves room for OpenCV versions, not regressions.
MEASURED_DICE = {
    "ISIC_0024306": 0.893,  # nv
    "ISIC_0030244": 0.938,  # df
    "ISIC_0030443": 0.897,  # mel
    "ISIC_0032076": 0.951,  # vasc
    "ISIC_0028807": 0.887,  # bcc
    "ISIC_0029176": 0.854,  # bkl
    "ISIC_0024628": 0.705,  # nv, palette-PNG mask
}
MEAN_DICE_FLOOR = 0.85  # measured mean 0.875


def _load(ham_dir: Path, image_id: str) -> tuple[np.ndarray, np.ndarray]:
    image = decode_image(ham_dir / "images" / f"{image_id}.jpg")
    mask = read_mask(ham_dir / "masks" / f"{image_id}_segmentation.png", image.shape[:2])
    return image, mask


def test_dice_on_real_images_is_above_the_measured_floor(ham_dir: Path) -> None:
    scores = {}
    for image_id, measured in MEASURED_DICE.items():
        image, reference = _load(ham_dir, image_id)
        mask = segment_lesion(image)
        assert mask.shape == image.shape[:2] and mask.dtype == bool
        scores[image_id] = dice(mask, reference)
        assert scores[image_id] >= measured - 0.05, (image_id, scores[image_id])
    assert np.mean(list(scores.values())) >= MEAN_DICE_FLOOR


def test_palette_masks_are_read_without_inversion(ham_dir: Path) -> None:
    path = ham_dir / "masks" / "ISIC_0024628_segmentation.png"
    with Image.open(path) as handle:
        assert handle.mode == "P"
        raw_indices = np.asarray(handle) > 127
    mask = read_mask(path)
    assert mask.shape == (450, 600)
    assert raw_indices.mean() > 0.9  # the raw palette indices are the inverse
    assert mask.mean() == pytest.approx(1 - raw_indices.mean())
    assert not mask[0, 0] and not mask[-1, -1]
    assert read_mask(path, (150, 200)).shape == (150, 200)


def test_a_larger_image_gives_the_same_mask_at_its_size(ham_dir: Path) -> None:
    image, reference = _load(ham_dir, "ISIC_0030443")
    large = cv2.resize(image, (600, 450), interpolation=cv2.INTER_CUBIC)
    mask = segment_lesion(large)
    assert mask.shape == (450, 600)
    large_reference = read_mask(ham_dir / "masks" / "ISIC_0030443_segmentation.png")
    assert dice(mask, large_reference) == pytest.approx(dice(segment_lesion(image), reference),
                                                        abs=0.03)


def test_segmenting_a_600x450_image_takes_under_50_ms(ham_dir: Path) -> None:
    image, _ = _load(ham_dir, "ISIC_0024306")
    large = cv2.resize(image, (600, 450), interpolation=cv2.INTER_CUBIC)
    threads = cv2.getNumThreads()
    cv2.setNumThreads(1)
    try:
        segment_lesion(large)
        times = []
        for _ in range(5):
            start = time.perf_counter()
            segment_lesion(large, hair_removal=True)
            times.append(time.perf_counter() - start)
    finally:
        cv2.setNumThreads(threads)
    assert float(np.median(times)) < 0.050


def test_a_uniform_frame_has_no_lesion() -> None:
    assert not segment_lesion(np.full((150, 200, 3), 180, np.uint8)).any()


def test_a_dark_disc_on_skin_is_found() -> None:
    image = np.full((150, 200, 3), (225, 180, 160), np.uint8)
    cv2.circle(image, (100, 75), 30, (110, 70, 50), -1)
    truth = np.zeros((150, 200), np.uint8)
    cv2.circle(truth, (100, 75), 30, 1, -1)
    assert dice(segment_lesion(image), truth.astype(bool)) > 0.85


def test_segment_rejects_non_rgb_input() -> None:
    with pytest.raises(ValueError, match="uint8 RGB"):
        segment_lesion(np.zeros((150, 200), np.uint8))


def test_dice_and_iou_exact_values() -> None:
    a = np.zeros((4, 4), bool)
    b = np.zeros((4, 4), bool)
    a[:2] = True  # 8 pixels
    b[1:3] = True  # 8 pixels, 4 shared
    assert dice(a, b) == 0.5
    assert iou(a, b) == pytest.approx(4 / 12)
    assert dice(np.zeros((2, 2), bool), np.zeros((2, 2), bool)) == 1.0
