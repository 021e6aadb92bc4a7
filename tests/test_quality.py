"""Capture-quality checks on real HAM10000 images and deliberately spoilt copies of them."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
import pytest

from skinstation.camera import QualityReport, assess_quality
from skinstation.inference.preprocessing import decode_image
from skinstation.inference.quality import measure_quality, outline_on_edge
from skinstation.settings import QualitySettings

CHECKS = [
    "focus", "underexposure", "overexposure", "clipping", "glare",
    "lesion_contrast", "lesion_size", "lesion_border",
]
THRESHOLDS = QualitySettings()


@pytest.fixture(scope="module")
def load(ham_dir: Path) -> Callable[[str], np.ndarray]:
    def decode(image_id: str) -> np.ndarray:
        return decode_image(ham_dir / "images" / f"{image_id}.jpg")

    return decode


def failed(report: QualityReport) -> list[str]:
    return [check.name for check in report.failures]


@pytest.mark.parametrize(
    "image_id", ["ISIC_0027419", "ISIC_0025030", "ISIC_0024306", "ISIC_0024307"]
)
def test_real_images_pass_every_check(load, image_id: str) -> None:
    report = assess_quality(load(image_id), THRESHOLDS)
    assert report.passed, report.reasons
    assert [check.name for check in report.checks] == CHECKS
    assert report.reasons == []


def test_passing_check_explains_itself(load) -> None:
    focus = assess_quality(load("ISIC_0027419"), THRESHOLDS)["focus"]
    assert focus.passed
    assert focus.threshold == 4.0
    assert focus.value == pytest.approx(33.02, abs=0.01)
    assert focus.reason == "sharpness 33.0, not below 4.0"
    clipping = assess_quality(load("ISIC_0027419"), THRESHOLDS)["clipping"]
    assert clipping.reason == "0.0% of pixels clipped, not above 50.0%"


def test_blurred_image_fails_focus_only(load) -> None:
    blurred = cv2.GaussianBlur(load("ISIC_0027419"), (0, 0), 3)
    report = assess_quality(blurred, THRESHOLDS)
    assert not report.passed
    assert report.reasons == ["image is out of focus: sharpness 1.2 below 4.0"]


def test_darkened_image_fails_underexposure_only(load) -> None:
    image = load("ISIC_0027419")
    dark = (image.astype(np.float32) * 0.2).astype(np.uint8)
    report = assess_quality(dark, THRESHOLDS)
    assert report.reasons == ["image is too dark: brightness 35.3 below 60.0"]
    original = assess_quality(image, THRESHOLDS)["underexposure"].value
    assert report["underexposure"].value == pytest.approx(original * 0.2, abs=0.5)


def test_overexposed_image_fails_exposure_checks(load) -> None:
    bright = np.clip(load("ISIC_0024306").astype(np.float32) * 2.5, 0, 255).astype(np.uint8)
    report = assess_quality(bright, THRESHOLDS)
    assert report.reasons == [
        "image is too bright: brightness 239.6 above 230.0",
        "image is overexposed: 99.3% of pixels clipped, above 50.0%",
        "too much glare: 78.7% of pixels are specular reflections, above 5.0%",
    ]


def test_specular_spots_fail_glare_only(load) -> None:
    image = load("ISIC_0024307").copy()
    rng = np.random.default_rng(0)
    spots = np.zeros(image.shape[:2], np.uint8)
    while (spots > 0).mean() < 0.1:
        centre = (int(rng.integers(0, 200)), int(rng.integers(0, 150)))
        cv2.circle(spots, centre, 4, 255, -1)
    image[spots > 0] = 255
    report = assess_quality(image, THRESHOLDS)
    assert failed(report) == ["glare"]
    assert report["glare"].value == pytest.approx((spots > 0).mean(), abs=0.002)


def test_lesion_too_small_when_the_camera_is_too_far(load) -> None:
    """A 5x5 mosaic of the image shrunk 5x: real skin all round, a tiny lesion in the centre."""
    tile = cv2.resize(load("ISIC_0027419"), (40, 30), interpolation=cv2.INTER_AREA)
    report = assess_quality(np.tile(tile, (5, 5, 1)), THRESHOLDS)
    assert report.reasons == [
        "lesion too small in frame: 0.8% of the image, below 1.0% (move closer)"
    ]


def disc(centre: tuple[int, int], radius: int) -> np.ndarray:
    mask = np.zeros((150, 200), np.uint8)
    cv2.circle(mask, centre, radius, 1, -1)
    return mask.astype(bool)


def test_outline_on_edge_measures_how_much_of_the_lesion_is_cut_off() -> None:
    edge = np.zeros((150, 200), bool)
    edge[[0, -1], :] = edge[:, [0, -1]] = True
    assert outline_on_edge(disc((100, 75), 40), edge) == 0.0
    # A half disc: 2r of 2r + πr is on the edge (0.39); a quarter disc: 2r of 2r + πr/2 (0.56).
    assert outline_on_edge(disc((0, 75), 40), edge) == pytest.approx(0.389, abs=0.015)
    assert outline_on_edge(disc((0, 0), 60), edge) == pytest.approx(0.560, abs=0.015)
    left_half = np.zeros((150, 200), bool)
    left_half[:, :100] = True
    assert outline_on_edge(left_half, edge) == pytest.approx(350 / 500, abs=0.005)
    assert outline_on_edge(np.zeros((150, 200), bool), edge) == 0.0


def test_lesion_running_off_the_frame(load) -> None:
    """The top-left window of ISIC_0024306 ends in the middle of its lesion."""
    window = np.ascontiguousarray(load("ISIC_0024306")[0:70, 12:112])
    assert assess_quality(window, THRESHOLDS).passed  # half a lesion: accepted by default
    strict = QualitySettings(max_lesion_border_fraction=0.45)
    assert assess_quality(window, strict).reasons == [
        "lesion runs off the frame: 50.5% of its outline is on the image edge, above 45.0% "
        "(centre it)"
    ]


def test_plain_skin_has_no_lesion(load) -> None:
    """Lesion-free skin (a corner of ISIC_0024346, per its mask) mirrored to full size."""
    skin = load("ISIC_0024346")[75:150, 100:200]
    top, bottom = np.hstack([skin, skin[:, ::-1]]), np.hstack([skin[::-1], skin[::-1, ::-1]])
    mirrored = np.vstack([top, bottom])
    report = assess_quality(np.ascontiguousarray(mirrored), THRESHOLDS)
    assert report.reasons == ["no lesion found: colour difference to the skin 1.6 below 5.0"]


def test_measures_hold_across_resolutions(load) -> None:
    """The same image as a 1280x960 camera frame gives the same verdict and measures."""
    image = load("ISIC_0024306")
    large = cv2.resize(image, (1280, 960), interpolation=cv2.INTER_CUBIC)
    small, big = measure_quality(image), measure_quality(large)
    assert assess_quality(large, THRESHOLDS).passed
    assert big.brightness == pytest.approx(small.brightness, abs=0.1)
    assert big.lesion_fraction == pytest.approx(small.lesion_fraction, abs=0.002)
    assert big.lesion_contrast == pytest.approx(small.lesion_contrast, abs=0.1)
    assert big.focus > THRESHOLDS.min_focus * 5
    blurred_large = cv2.GaussianBlur(large, (0, 0), 3 * 6.4)  # sigma 3 at the HAM scale
    assert failed(assess_quality(blurred_large, THRESHOLDS)) == ["focus"]


def test_dermatoscope_vignette_is_left_out(load) -> None:
    """Black corners around a round field of view are neither dark skin nor a lesion."""
    image = cv2.resize(load("ISIC_0024306"), (1280, 960), interpolation=cv2.INTER_CUBIC)
    rows, cols = np.mgrid[0:960, 0:1280]
    vignetted = image.copy()
    vignetted[np.hypot(rows - 479.5, cols - 639.5) > 480] = 0
    report = assess_quality(vignetted, THRESHOLDS)
    assert report.passed, report.reasons
    whole_frame_mean = float(cv2.cvtColor(vignetted, cv2.COLOR_RGB2GRAY).mean())
    assert whole_frame_mean < 100 < report["underexposure"].value


def test_blank_frames_fail_without_crashing() -> None:
    black = assess_quality(np.zeros((960, 1280, 3), np.uint8), THRESHOLDS)
    assert failed(black) == ["focus", "underexposure", "lesion_contrast", "lesion_size"]
    grey = assess_quality(np.full((150, 200, 3), 128, np.uint8), THRESHOLDS)
    assert failed(grey) == ["focus", "lesion_contrast", "lesion_size"]


def test_thresholds_come_from_settings(load) -> None:
    strict = QualitySettings(min_focus=40.0)
    report = assess_quality(load("ISIC_0027419"), strict)
    assert report.reasons == ["image is out of focus: sharpness 33.0 below 40.0"]


def test_report_serialises_every_check(load) -> None:
    report = assess_quality(load("ISIC_0024307"), THRESHOLDS)
    data = report.to_dict()
    assert data["passed"] is True
    assert [item["name"] for item in data["checks"]] == CHECKS
    assert set(data["checks"][0]) == {"name", "value", "threshold", "passed", "reason"}
    with pytest.raises(KeyError):
        report["sharpness"]


def test_rejects_non_rgb_input() -> None:
    with pytest.raises(ValueError, match=r"expected an \(H, W, 3\) uint8 RGB image, got \(5, 5\)"):
        assess_quality(np.zeros((5, 5), np.uint8), THRESHOLDS)
