"""Lesion measurements, change flags, registration and comparison images."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from skinstation.inference import lesion_change as change
from skinstation.inference.lesion_registration import (
    FIXED_COLOUR,
    MOVING_COLOUR,
    overlay,
    register,
    side_by_side,
)
from skinstation.inference.preprocessing import decode_image
from skinstation.inference.segmentation import segment_lesion

REAL_IDS = ("ISIC_0024306", "ISIC_0030443", "ISIC_0029176")


def _disc(radius: int = 30, shape: tuple[int, int] = (150, 200)) -> np.ndarray:
    mask = np.zeros(shape, np.uint8)
    cv2.circle(mask, (shape[1] // 2, shape[0] // 2), radius, 1, -1)
    return mask.astype(bool)


def _skin_with(mask: np.ndarray, colour: tuple[int, int, int] = (110, 70, 50)) -> np.ndarray:
    image = np.full((*mask.shape, 3), (225, 180, 160), np.uint8)
    image[mask] = colour
    return image


def _real(ham_dir: Path, image_id: str) -> tuple[np.ndarray, np.ndarray]:
    image = decode_image(ham_dir / "images" / f"{image_id}.jpg")
    return image, segment_lesion(image)


def _zoom(image: np.ndarray, factor: float) -> np.ndarray:
    height, width = image.shape[:2]
    matrix = cv2.getRotationMatrix2D((width / 2, height / 2), 0.0, factor)
    return cv2.warpAffine(image, matrix, (width, height), borderMode=cv2.BORDER_REFLECT_101)


def test_a_disc_measures_as_a_round_symmetric_lesion() -> None:
    mask = _disc(30)
    measured = change.measure_lesion(_skin_with(mask), mask, mm_per_pixel=0.05)
    assert measured.area_px == int(mask.sum())
    assert measured.area_px == pytest.approx(np.pi * 30**2, rel=0.02)
    assert measured.diameter_px == pytest.approx(61.0, abs=1.0)
    assert measured.area_mm2 == pytest.approx(measured.area_px * 0.05**2)
    assert measured.diameter_mm == pytest.approx(measured.diameter_px * 0.05)
    assert measured.asymmetry < 0.02
    assert measured.border_irregularity == pytest.approx(1.0, abs=0.12)
    assert measured.colour_count == 1
    assert measured.lab_std[0] < 2.5  # hair painting blurs the staircase edge a little
    assert measured.centroid == pytest.approx((100.0, 75.0), abs=0.5)


def test_scale_is_optional() -> None:
    mask = _disc(20)
    measured = change.measure_lesion(_skin_with(mask), mask)
    assert measured.area_mm2 is None and measured.diameter_mm is None


def test_an_irregular_two_coloured_lesion_scores_higher() -> None:
    mask = np.zeros((150, 200), np.uint8)
    cv2.rectangle(mask, (60, 40), (140, 70), 1, -1)
    cv2.rectangle(mask, (60, 40), (85, 120), 1, -1)  # an L shape
    mask_bool = mask.astype(bool)
    image = _skin_with(mask_bool)
    image[:, :80][mask_bool[:, :80]] = (40, 30, 30)  # a dark part
    measured = change.measure_lesion(image, mask_bool)
    round_one = change.measure_lesion(_skin_with(_disc(30)), _disc(30))
    assert measured.asymmetry > 0.2 > round_one.asymmetry
    assert measured.border_irregularity > round_one.border_irregularity + 0.2
    assert measured.colour_count == 2


def test_measure_rejects_mismatched_inputs() -> None:
    mask = _disc(10)
    with pytest.raises(ValueError, match="does not match"):
        change.measure_lesion(_skin_with(mask), mask[:, :100])
    with pytest.raises(ValueError, match="positive"):
        change.measure_lesion(_skin_with(mask), mask, mm_per_pixel=0.0)


@pytest.mark.parametrize("image_id", REAL_IDS)
def test_the_same_capture_is_not_changed(ham_dir: Path, image_id: str) -> None:
    image, mask = _real(ham_dir, image_id)
    measured = change.measure_lesion(image, mask)
    result = change.compare(measured, measured)
    assert not result.changed and result.flags == ()
    assert result.area_change == 0.0 and result.colour_delta_e == 0.0


@pytest.mark.parametrize("image_id", REAL_IDS)
def test_an_enlarged_lesion_is_flagged(ham_dir: Path, image_id: str) -> None:
    image, mask = _real(ham_dir, image_id)
    before = change.measure_lesion(image, mask)
    grown = cv2.dilate(mask.astype(np.uint8), cv2.getStructuringElement(
        cv2.MORPH_ELLIPSE, (31, 31))).astype(bool)
    result = change.compare(before, change.measure_lesion(image, grown))
    assert result.area_change > change.AREA_CHANGE_THRESHOLD
    assert result.area_changed and result.changed and "area" in result.flags


def test_a_zoomed_capture_is_growth_unless_the_registration_scale_corrects_it(
    ham_dir: Path,
) -> None:
    image, mask = _real(ham_dir, "ISIC_0030443")
    zoomed = _zoom(image, 1.6)
    zoomed_mask = segment_lesion(zoomed)
    before = change.measure_lesion(image, mask)
    after = change.measure_lesion(zoomed, zoomed_mask)
    assert change.compare(before, after).area_changed
    registration = register(image, zoomed, mask, zoomed_mask)
    assert registration.scale == pytest.approx(1 / 1.6, rel=0.05)
    corrected = change.compare(before, after, after_scale=registration.scale)
    assert not corrected.area_changed and not corrected.diameter_changed


def test_mm_sizes_are_compared_when_both_scales_are_known() -> None:
    small, large = _disc(20), _disc(40)
    before = change.measure_lesion(_skin_with(small), small, mm_per_pixel=0.1)
    after = change.measure_lesion(_skin_with(large), large, mm_per_pixel=0.05)  # same 4 mm
    result = change.compare(before, after)
    assert result.diameter_change == pytest.approx(0.0, abs=0.05)
    assert not result.area_changed


def test_a_colour_change_relative_to_the_skin_is_flagged() -> None:
    mask = _disc(30)
    before = change.measure_lesion(_skin_with(mask), mask)
    darker = change.measure_lesion(_skin_with(mask, (40, 25, 20)), mask)
    assert change.compare(before, darker).colour_changed
    # The same scene under a uniformly brighter light: lesion and skin shift together.
    brighter = cv2.convertScaleAbs(_skin_with(mask), alpha=1.0, beta=12)
    assert not change.compare(before, change.measure_lesion(brighter, mask)).colour_changed


@pytest.mark.parametrize(("angle", "shift"), [(0.0, (12.0, -7.0)), (10.0, (8.0, 5.0)),
                                              (-15.0, (-6.0, 9.0))])
@pytest.mark.parametrize("image_id", REAL_IDS)
def test_a_shifted_rotated_copy_registers_back_within_2_px(
    ham_dir: Path, image_id: str, angle: float, shift: tuple[float, float]
) -> None:
    image, mask = _real(ham_dir, image_id)
    height, width = image.shape[:2]
    truth = cv2.getRotationMatrix2D((width / 2, height / 2), angle, 1.0)
    truth[:, 2] += shift
    moving = cv2.warpAffine(image, truth, (width, height), borderMode=cv2.BORDER_REFLECT_101)
    registration = register(image, moving, mask, segment_lesion(moving))
    grid = np.stack(np.meshgrid(np.arange(30, width - 30, 10),
                                np.arange(30, height - 30, 10)), -1).reshape(-1, 2)
    error = np.linalg.norm(registration.apply(grid @ truth[:, :2].T + truth[:, 2]) - grid, axis=1)
    assert registration.method in ("orb", "ecc")
    assert float(error.mean()) < 2.0


def test_featureless_captures_fall_back_to_the_mask_centroids() -> None:
    mask = _disc(25)
    moved = np.roll(mask, (6, -9), axis=(0, 1))
    image = np.full((150, 200, 3), 200, np.uint8)  # no features, no correlation to find
    registration = register(image, image.copy(), mask, moved)
    assert registration.method == "centroid"
    assert registration.apply(np.array([[91.0, 81.0]]))[0] == pytest.approx((100.0, 75.0),
                                                                            abs=0.1)
    assert register(image, image.copy()).method == "identity"


def test_overlay_and_side_by_side_images(ham_dir: Path) -> None:
    image, mask = _real(ham_dir, "ISIC_0024306")
    zoomed = _zoom(image, 1.3)
    zoomed_mask = segment_lesion(zoomed)
    registration = register(image, zoomed, mask, zoomed_mask)
    blended = overlay(image, zoomed, registration, mask, zoomed_mask)
    assert blended.shape == image.shape and blended.dtype == np.uint8
    pixels = blended.reshape(-1, 3)
    assert (pixels == FIXED_COLOUR).all(axis=1).any()
    assert (pixels == MOVING_COLOUR).all(axis=1).any()
    pair = side_by_side(image, cv2.resize(zoomed, (400, 300)), mask,
                        cv2.resize(zoomed_mask.astype(np.uint8), (400, 300)).astype(bool))
    assert pair.shape == (300, 400 + 4 + 400, 3)  # the taller height, aspect kept
