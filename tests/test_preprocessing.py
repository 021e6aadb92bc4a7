import io

import cv2
import numpy as np
import pytest
from PIL import Image

from skinstation.inference import preprocessing as pp


@pytest.fixture(scope="module")
def image(real_image_path):
    return pp.decode_image(real_image_path)


def test_decode_real_image(image):
    assert image.shape == (150, 200, 3)
    assert image.dtype == np.uint8


def test_decode_applies_exif_orientation(image):
    buffer = io.BytesIO()
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise when displayed
    Image.fromarray(image).save(buffer, format="JPEG", exif=exif, quality=95)
    decoded = pp.decode_image(buffer.getvalue(), name="rotated.jpg")
    assert decoded.shape == (200, 150, 3)


def test_decode_errors_name_the_file(tmp_path, real_image_path):
    with pytest.raises(pp.ImageDecodeError, match=r"cannot read image .*missing\.jpg"):
        pp.decode_image(tmp_path / "missing.jpg")
    truncated = tmp_path / "truncated.jpg"
    truncated.write_bytes(real_image_path.read_bytes()[:300])
    with pytest.raises(pp.ImageDecodeError, match=r"truncated\.jpg"):
        pp.decode_image(truncated)
    with pytest.raises(pp.ImageDecodeError, match=r"cannot decode image notes\.txt"):
        pp.decode_image(b"this is not an image", name="notes.txt")


@pytest.mark.parametrize(("mode", "side"), [("crop", 150), ("pad", 200), ("stretch", 200)])
def test_square(image, mode, side):
    square = pp.to_square(image, mode)
    assert square.shape == (side, side, 3)
    if mode == "crop":
        np.testing.assert_array_equal(square, image[:, 25:175])
    if mode == "pad":
        np.testing.assert_array_equal(square[25:175], image)


def test_zoom_and_resize(image):
    zoomed = pp.zoom(image, 0.5)
    assert zoomed.shape == (75, 100, 3)
    np.testing.assert_array_equal(zoomed, image[37:112, 50:150])
    assert pp.resize(image, 224).shape == (224, 224, 3)
    assert pp.zoom(image, 1.0) is image


def test_shades_of_gray_neutralises_a_colour_cast(image):
    cast = np.clip(image.astype(np.float32) * np.array([1.3, 1.0, 0.7]), 0, 255).astype(np.uint8)
    corrected = pp.shades_of_gray(cast, power=6)
    illuminant = np.power(np.mean(np.power(corrected / 255.0, 6), axis=(0, 1)), 1 / 6)
    assert illuminant.max() / illuminant.min() < 1.05  # the estimated light is now grey
    original = np.power(np.mean(np.power(cast / 255.0, 6), axis=(0, 1)), 1 / 6)
    assert original.max() / original.min() > 1.4


def test_shades_of_gray_tables_give_the_per_pixel_formulas_bytes(ham_dir):
    # the lookup tables must reproduce the float32 per-pixel computation byte for byte:
    # models were trained and calibrated on its output
    def per_pixel(image, power):
        pixels = image.astype(np.float32) / 255.0
        illuminant = np.power(np.mean(np.power(pixels, power), axis=(0, 1)), 1.0 / power)
        gains = (1.0 / np.sqrt(3.0)) / (illuminant / float(np.sqrt(np.sum(illuminant**2))))
        return np.clip(pixels * gains * 255.0, 0, 255).astype(np.uint8)

    paths = sorted((ham_dir / "images").glob("*.jpg"))[::500]
    assert len(paths) == 21
    for path in paths:
        prepared = pp.resize(pp.to_square(pp.decode_image(path), "crop"), 224)
        for power in (6.0, 2.0):
            np.testing.assert_array_equal(pp.shades_of_gray(prepared, power),
                                          per_pixel(prepared, power))
    black = np.zeros((8, 8, 3), np.uint8)
    assert pp.shades_of_gray(black) is black  # no light to estimate: unchanged


def test_shades_of_gray_refuses_what_its_tables_cannot_index(image):
    with pytest.raises(ValueError, match=r"needs an \(H, W, 3\) uint8 RGB image, got "
                                         r"\(150, 200, 3\) uint16"):
        pp.shades_of_gray(image.astype(np.uint16) * 256)
    with pytest.raises(ValueError, match=r"got \(150, 200\) uint8"):
        pp.shades_of_gray(image[..., 0])
    with pytest.raises(ValueError, match=r"power must be > 0, got 0\.0"):
        pp.shades_of_gray(image, power=0.0)
    with pytest.raises(ValueError, match="sog_power must be > 0, got -1"):
        pp.PreprocessConfig(sog_power=-1)


def test_brightness_normalisation_reaches_target(image):
    dark = (image * 0.4).astype(np.uint8)
    out = pp.normalise_brightness(dark, 120.0)
    mean = cv2.cvtColor(out, cv2.COLOR_RGB2GRAY).mean()
    assert abs(mean - 120.0) < 12.0
    assert cv2.cvtColor(dark, cv2.COLOR_RGB2GRAY).mean() < 80


def test_hair_removal_erases_drawn_hairs(image):
    clean = pp.resize(pp.to_square(image), 224)
    hairy = clean.copy()
    for x in (40, 90, 150):
        cv2.line(hairy, (x, 0), (x + 40, 223), (20, 15, 10), 2)
    mask = pp.hair_mask(hairy)
    drawn = np.zeros(hairy.shape[:2], np.uint8)
    for x in (40, 90, 150):
        cv2.line(drawn, (x, 0), (x + 40, 223), 255, 2)
    assert (mask[drawn > 0] > 0).mean() > 0.8  # the hairs are found
    repaired = pp.remove_hair(hairy)
    error_before = np.abs(hairy.astype(int) - clean)[drawn > 0].mean()
    error_after = np.abs(repaired.astype(int) - clean)[drawn > 0].mean()
    assert error_after < error_before / 3


@pytest.mark.parametrize("method", ["median", "bilateral", "nlmeans"])
def test_denoise_reduces_noise(image, method):
    clean = pp.resize(pp.to_square(image), 224)
    rng = np.random.default_rng(0)
    noisy = np.clip(clean + rng.normal(0, 12, clean.shape), 0, 255).astype(np.uint8)
    denoised = pp.denoise(noisy, method)
    assert np.abs(denoised.astype(int) - clean).mean() < np.abs(noisy.astype(int) - clean).mean()
    assert pp.denoise(noisy, "none") is noisy


def test_canonical_rotation_aligns_an_elongated_lesion():
    canvas = np.full((224, 224, 3), 200, np.uint8)
    cv2.ellipse(canvas, (112, 112), (80, 25), 35, 0, 360, (60, 40, 30), -1)
    assert abs(pp.principal_angle(pp.lesion_mask(canvas))) == pytest.approx(35, abs=3)
    rotated = pp.canonical_rotation(canvas)
    assert abs(pp.principal_angle(pp.lesion_mask(rotated))) < 3


def test_prepare_and_model_input(image):
    config = pp.PreprocessConfig(size=224)
    prepared = pp.prepare(image, config)
    assert prepared.shape == (224, 224, 3) and prepared.dtype == np.uint8
    tensor = pp.preprocess(image, config)
    assert tensor.shape == (3, 224, 224) and tensor.dtype == np.float32
    expected = (prepared[10, 20, 0] / 255.0 - 0.485) / 0.229
    assert tensor[0, 10, 20] == pytest.approx(expected, abs=1e-6)
    np.testing.assert_array_equal(pp.prepare(image, config), prepared)  # deterministic


def test_config_round_trip_and_validation():
    config = pp.PreprocessConfig(size=192, square="pad", denoise="median", brightness_target=110)
    assert pp.PreprocessConfig.from_dict(config.to_dict()) == config
    with pytest.raises(ValueError, match="unknown preprocessing option"):
        pp.PreprocessConfig.from_dict({"sise": 3})
    with pytest.raises(ValueError, match="hair_kernel must be odd"):
        pp.PreprocessConfig(hair_kernel=8)
    with pytest.raises(ValueError, match="expected an \\(H, W, 3\\) uint8"):
        pp.prepare(np.zeros((10, 10), np.uint8), config)
