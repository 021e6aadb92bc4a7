"""Content-addressed atomic image files, integrity checks and start-up recovery."""

from __future__ import annotations

import hashlib
import io
import os
import stat
import time
from datetime import timedelta
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from skinstation.core import images as images_module
from skinstation.settings import Settings
from skinstation.storage import (
    ImageIntegrityError,
    ImageMissingError,
    ImageStore,
    InvalidImageError,
    encode_image,
    init_database,
    recover,
)


def _age(path: Path, seconds: float) -> None:
    old = time.time() - seconds
    os.utime(path, (old, old))


def test_encoded_bytes_are_kept_unchanged_and_named_by_sha256(real_image_path: Path) -> None:
    original = real_image_path.read_bytes()
    encoded = encode_image(original)
    digest = hashlib.sha256(original).hexdigest()
    assert encoded.data == original
    assert encoded.sha256 == digest
    height, width = cv2.imread(str(real_image_path)).shape[:2]  # an independent decoder
    assert (encoded.extension, encoded.width, encoded.height) == ("jpg", width, height)
    assert encoded.ref == f"{digest[:2]}/{digest}.jpg"


def test_rgb_array_becomes_lossless_png_in_rgb_order() -> None:
    rng = np.random.default_rng(7)
    pixels = rng.integers(0, 256, (31, 47, 3), dtype=np.uint8)
    encoded = encode_image(pixels)
    assert encoded.data[:8] == b"\x89PNG\r\n\x1a\n"
    assert (encoded.extension, encoded.width, encoded.height) == ("png", 47, 31)
    decoded = np.asarray(Image.open(io.BytesIO(encoded.data)).convert("RGB"))
    np.testing.assert_array_equal(decoded, pixels)


def test_uint16_grayscale_round_trips_exactly() -> None:
    pixels = np.arange(12 * 9, dtype=np.uint16).reshape(12, 9) * 600
    encoded = encode_image(pixels)
    decoded = np.asarray(Image.open(io.BytesIO(encoded.data)))
    np.testing.assert_array_equal(decoded.astype(np.uint16), pixels)


@pytest.mark.parametrize(
    ("image", "message"),
    [
        (b"", "image bytes are empty"),
        (b"not an image at all", "image bytes do not decode"),
        (np.zeros((4, 4, 4), np.uint8), r"array must be \(H, W\) or \(H, W, 3\), got shape"),
        (np.zeros((4, 4, 3), np.float32), "array must be uint8 .* got float32"),
        (np.zeros((0, 4), np.uint8), "array must be"),
    ],
)
def test_unusable_images_are_refused(image: object, message: str) -> None:
    with pytest.raises(InvalidImageError, match=message):
        encode_image(image)  # type: ignore[arg-type]


def test_truncated_jpeg_is_refused(real_image_path: Path) -> None:
    data = real_image_path.read_bytes()
    with pytest.raises(InvalidImageError, match="image bytes do not decode"):
        encode_image(data[: len(data) // 2])


def test_gif_is_refused_as_a_format_not_kept() -> None:
    buffer = io.BytesIO()
    Image.new("RGB", (4, 4)).save(buffer, format="GIF")
    with pytest.raises(InvalidImageError, match="image format GIF not kept"):
        encode_image(buffer.getvalue())


def test_put_writes_atomically_with_file_and_directory_fsync(
    tmp_path: Path, real_image_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    synced: list[str] = []
    real_fsync = os.fsync

    def recording_fsync(fd: int) -> None:
        synced.append("dir" if stat.S_ISDIR(os.fstat(fd).st_mode) else "file")
        real_fsync(fd)

    monkeypatch.setattr(images_module.os, "fsync", recording_fsync)
    store = ImageStore(tmp_path / "images")
    encoded = encode_image(real_image_path.read_bytes())
    ref = store.put(encoded)
    path = store.path_for(ref)
    assert path.read_bytes() == encoded.data
    assert synced[0] == "file" and synced.count("dir") == 3  # shard dir, created dirs' parents
    assert sorted(p.name for p in path.parent.iterdir()) == [path.name]  # no temp left
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_failed_write_leaves_neither_file_nor_temp(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def failing_replace(*_: object) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(images_module.os, "replace", failing_replace)
    store = ImageStore(tmp_path / "images")
    with pytest.raises(OSError, match="disk full"):
        store.put(encode_image(np.zeros((3, 3), np.uint8)))
    assert list(store.files()) == []


def test_read_verifies_sha256_and_reports_tampering(tmp_path: Path) -> None:
    store = ImageStore(tmp_path / "images")
    encoded = encode_image(np.full((5, 5, 3), 9, np.uint8))
    ref = store.put(encoded)
    assert store.read(ref, encoded.sha256) == encoded.data
    path = store.path_for(ref)
    tampered = bytearray(path.read_bytes())
    tampered[-20] ^= 0xFF
    path.write_bytes(bytes(tampered))
    actual = hashlib.sha256(bytes(tampered)).hexdigest()
    with pytest.raises(ImageIntegrityError) as caught:
        store.read(ref, encoded.sha256)
    assert str(caught.value) == (
        f"image file {ref} fails its integrity check: sha256 is {actual}, "
        f"expected {encoded.sha256} (file altered or corrupted)"
    )
    path.unlink()
    with pytest.raises(ImageMissingError, match=f"image file {ref} is missing"):
        store.read(ref, encoded.sha256)


def test_put_repairs_a_damaged_copy_and_refreshes_an_intact_one(tmp_path: Path) -> None:
    store = ImageStore(tmp_path / "images")
    encoded = encode_image(np.full((6, 6), 200, np.uint8))
    path = store.path_for(store.put(encoded))
    _age(path, 3600)
    store.put(encoded)
    assert time.time() - path.stat().st_mtime < 60
    path.write_bytes(b"garbage")
    store.put(encoded)
    assert path.read_bytes() == encoded.data


def test_references_cannot_escape_the_store(tmp_path: Path) -> None:
    store = ImageStore(tmp_path / "images")
    with pytest.raises(ValueError, match="points outside the image store"):
        store.path_for("../station.db")


def test_recover_removes_old_orphans_and_temp_files_only(settings: Settings) -> None:
    database = init_database(settings)
    store = database.images
    old_orphan = store.path_for(store.put(encode_image(np.full((4, 4), 1, np.uint8))))
    new_orphan = store.path_for(store.put(encode_image(np.full((4, 4), 2, np.uint8))))
    old_temp = old_orphan.parent / ".tmp-deadbeef"
    old_temp.write_bytes(b"partial")
    new_temp = new_orphan.parent / ".tmp-cafebabe"
    new_temp.write_bytes(b"partial")
    for path in (old_orphan, old_temp):
        _age(path, 600)

    report = recover(settings, grace=timedelta(minutes=5))

    assert report.orphans_removed == (store.ref_of(old_orphan),)
    assert report.temp_files_removed == 1
    assert (report.missing_images, report.corrupt_images) == ((), ())
    assert not old_orphan.exists() and not old_temp.exists()
    assert new_orphan.exists() and new_temp.exists()
    assert recover(settings, grace=timedelta(0)).temp_files_removed == 1
    assert list(store.files()) == []
    assert recover(settings, grace=timedelta(0)).clean
