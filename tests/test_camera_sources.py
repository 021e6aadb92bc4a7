"""Frame sources: the simulated dermatoscope, synthetic frames and the OpenCV camera path."""

from __future__ import annotations

import re
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from skinstation.camera import (
    SYNTHETIC_LABEL,
    CameraDisconnectedError,
    CameraError,
    CameraFrameSource,
    CameraUnavailableError,
    Frame,
    SimulatedCable,
    SimulatedDermatoscope,
    SyntheticFrameSource,
)
from skinstation.camera.simulator import is_numbered_sequence
from skinstation.camera.synthetic import label_banner_height

IMAGE_IDS = ("ISIC_0027419", "ISIC_0025030", "ISIC_0024306")
STOPPED = "stopped delivering frames (unplugged?); reconnect it and open it again"
STOPPED_PATTERN = re.escape(STOPPED)


@pytest.fixture(scope="module")
def images(ham_dir: Path) -> list[Path]:
    return [ham_dir / "images" / f"{image_id}.jpg" for image_id in IMAGE_IDS]


def expected_rgb(path: Path) -> np.ndarray:
    return cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB)


@pytest.fixture()
def video(tmp_path: Path, images: list[Path]) -> Path:
    """A three-frame MJPG video of real images, written with OpenCV."""
    path = tmp_path / "lesions.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10, (200, 150))
    for image in images:
        writer.write(cv2.imread(str(image)))
    writer.release()
    return path


def decoded_video_frames(path: Path) -> list[np.ndarray]:
    capture = cv2.VideoCapture(str(path))
    frames = []
    while True:
        ok, frame = capture.read()
        if not ok:
            return frames
        frames.append(cv2.cvtColor(frame, cv2.COLOR_BGR2RGB))


def test_simulator_replays_real_images_in_order_and_loops(images: list[Path]) -> None:
    with SimulatedDermatoscope(images, fps=0) as source:
        frames = [source.read() for _ in range(4)]
        properties = source.properties
    assert [frame.label for frame in frames] == [
        "ISIC_0027419.jpg", "ISIC_0025030.jpg", "ISIC_0024306.jpg", "ISIC_0027419.jpg",
    ]
    for frame, path in zip(frames, [*images, images[0]], strict=True):
        assert np.array_equal(frame.pixels, expected_rgb(path))
    assert [frame.sequence for frame in frames] == [1, 2, 3, 4]
    assert {frame.device_id for frame in frames} == {"simulator:3 images"}
    assert {frame.source_kind for frame in frames} == {"simulator"}
    assert frames[0].simulated and not frames[0].synthetic
    assert (properties.width, properties.height, properties.backend) == (200, 150, "CV_IMAGES")
    assert not source.is_open


def test_frames_are_read_only(images: list[Path]) -> None:
    with SimulatedDermatoscope(images, fps=0) as source:
        frame = source.read()
    with pytest.raises(ValueError, match=r"read-only"):
        frame.pixels[0, 0, 0] = 1


def test_frame_rejects_wrong_layout() -> None:
    with pytest.raises(ValueError, match=r"frame must be \(H, W, 3\) uint8, got \(4, 4\) uint8"):
        Frame(np.zeros((4, 4), np.uint8), 0.0, "x", 1, "camera")


def test_simulator_folder_plays_any_names_sorted_and_skips_other_files(
    tmp_path: Path, images: list[Path]
) -> None:
    folder = tmp_path / "scope"
    folder.mkdir()
    (folder / "zz-second.jpg").symlink_to(images[0])
    (folder / "AA first.jpeg").symlink_to(images[1])
    (folder / "notes.txt").write_text("not an image")
    with SimulatedDermatoscope(folder, fps=0) as source:
        labels = [source.read().label for _ in range(3)]
        assert source.images == [folder / "AA first.jpeg", folder / "zz-second.jpg"]
    assert labels == ["AA first.jpeg", "zz-second.jpg", "AA first.jpeg"]


def test_simulator_resizes_to_the_camera_resolution(images: list[Path]) -> None:
    with SimulatedDermatoscope(images, fps=0, size=(1280, 960)) as source:
        frame = source.read()
        properties = source.properties
    assert frame.pixels.shape == (960, 1280, 3)
    assert (properties.width, properties.height) == (1280, 960)
    assert (properties.requested_width, properties.requested_height) == (1280, 960)
    # HAM images are 4:3 like the camera, so this is a plain 6.4x enlargement.
    expected = cv2.resize(expected_rgb(images[0]), (1280, 960), interpolation=cv2.INTER_CUBIC)
    assert np.array_equal(frame.pixels, expected)


def test_simulator_paces_frames_at_the_configured_rate(images: list[Path]) -> None:
    with SimulatedDermatoscope(images, fps=40) as source:
        source.read()
        started = time.monotonic()
        for _ in range(4):
            source.read()
        elapsed = time.monotonic() - started
    assert 4 / 40 - 0.01 <= elapsed < 4 / 40 + 0.15


def test_simulator_rejects_negative_fps(images: list[Path]) -> None:
    with pytest.raises(ValueError, match=r"fps must be >= 0, got -1"):
        SimulatedDermatoscope(images, fps=-1)


def test_simulator_plays_a_video_file_and_loops(video: Path) -> None:
    expected = decoded_video_frames(video)
    assert len(expected) == 3
    with SimulatedDermatoscope(video, fps=0) as source:
        frames = [source.read() for _ in range(5)]
        assert source.properties.backend == "FFMPEG"
    for frame, reference in zip(frames, [*expected, *expected[:2]], strict=True):
        assert np.array_equal(frame.pixels, reference)
    assert frames[0].device_id == f"simulator:{video}"


def test_simulator_without_loop_ends_like_an_unplugged_device(images: list[Path]) -> None:
    source = SimulatedDermatoscope(images, fps=0, loop=False)
    source.open()
    for _ in range(3):
        source.read()
    with pytest.raises(CameraDisconnectedError) as raised:
        source.read()
    assert str(raised.value) == f"simulator:3 images {STOPPED}"
    assert not source.is_open


def test_unplugged_simulator_fails_reads_and_opens_until_plugged_back(
    images: list[Path],
) -> None:
    cable = SimulatedCable(unplug_after_frames=2)
    source = SimulatedDermatoscope(images, fps=0, cable=cable)
    source.open()
    assert [source.read().label for _ in range(2)] == ["ISIC_0027419.jpg", "ISIC_0025030.jpg"]
    with pytest.raises(CameraDisconnectedError, match=f"^simulator:3 images {STOPPED_PATTERN}$"):
        source.read()
    assert not source.is_open
    with pytest.raises(CameraUnavailableError) as raised:
        source.open()
    assert str(raised.value) == "cannot open simulator:3 images: device not connected"
    cable.plug_in()
    source.open()
    frame = source.read()
    assert (frame.label, frame.sequence) == ("ISIC_0027419.jpg", 1)
    source.close()


def test_reading_a_closed_source_is_an_error(images: list[Path]) -> None:
    source = SimulatedDermatoscope(images, fps=0)
    with pytest.raises(CameraError, match=r"^simulator:3 images is not open$"):
        source.read()
    with pytest.raises(CameraError, match=r"^simulator:3 images is not open$"):
        _ = source.properties


def test_simulator_reports_missing_or_empty_media(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere"
    with pytest.raises(CameraUnavailableError) as raised:
        SimulatedDermatoscope(missing).open()
    assert str(raised.value) == f"cannot open simulator:{missing}: no such folder or file"
    (tmp_path / "empty").mkdir()
    with pytest.raises(CameraUnavailableError) as raised:
        SimulatedDermatoscope(tmp_path / "empty").open()
    assert str(raised.value) == f"cannot open simulator:{tmp_path / 'empty'}: no images found"


def test_simulator_playlist_is_temporary(
    tmp_path: Path, images: list[Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    with SimulatedDermatoscope(images, fps=0) as source:
        source.read()
        playlists = list(tmp_path.glob("skinstation-sim-*"))
        assert len(playlists) == 1
        links = sorted(playlists[0].iterdir())
        assert [link.name for link in links] == [f"frame_00000{i}.img" for i in range(3)]
        assert all(link.is_symlink() for link in links)
    assert list(tmp_path.glob("skinstation-sim-*")) == []


def test_consecutively_numbered_folder_is_opened_without_a_playlist(
    tmp_path: Path, images: list[Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = tmp_path / "scans"
    folder.mkdir()
    for number, image in zip((98, 99, 100), images, strict=True):
        (folder / f"scan_{number:04d}.jpg").symlink_to(image)
    assert is_numbered_sequence(sorted(folder.iterdir()))
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    with SimulatedDermatoscope(folder, fps=0) as source:
        labels = [source.read().label for _ in range(4)]
        assert list(tmp_path.glob("skinstation-sim-*")) == []
        assert source.properties.backend == "CV_IMAGES"
    assert labels == ["scan_0098.jpg", "scan_0099.jpg", "scan_0100.jpg", "scan_0098.jpg"]


def test_numbered_sequence_detection(tmp_path: Path) -> None:
    def names(*files: str) -> list[Path]:
        return [tmp_path / name for name in files]

    assert is_numbered_sequence(names("ISIC_0024306.jpg", "ISIC_0024307.jpg"))
    assert not is_numbered_sequence(names("ISIC_0024306.jpg", "ISIC_0024308.jpg"))
    assert not is_numbered_sequence(names("a_01.jpg", "b_02.jpg"))
    assert not is_numbered_sequence(names("a_01.jpg", "a_02.png"))
    assert is_numbered_sequence(names("a_9.jpg", "a_10.jpg"))
    assert not is_numbered_sequence(names("a_09.jpg", "a_010.jpg"))  # padding differs
    assert not is_numbered_sequence(names("lesion.jpg"))
    assert not is_numbered_sequence([tmp_path / "x" / "a_1.jpg", tmp_path / "a_2.jpg"])
    assert not is_numbered_sequence([])


def test_synthetic_frames_are_labelled_and_flagged() -> None:
    with SyntheticFrameSource(640, 480, fps=0) as source:
        first, second = source.read(), source.read()
        assert source.synthetic
        assert source.properties.notes == (
            "synthetic frames: no camera and no simulator media configured",
        )
    assert SYNTHETIC_LABEL == "SIMULATED — NOT A PATIENT IMAGE"
    assert first.synthetic and first.simulated and first.source_kind == "synthetic"
    assert first.device_id == "synthetic:640x480"
    assert first.pixels.shape == (480, 640, 3)
    banner = first.pixels[480 - label_banner_height(480) :]
    text = banner.min(axis=2) > 200
    assert 0.05 < text.mean() < 0.4  # white lettering on the black banner
    assert (banner.max(axis=2) == banner.min(axis=2)).all()  # only black, white and grey
    columns = np.nonzero(text.any(axis=0))[0]
    assert columns.min() > 20 and columns.max() < 620  # the whole label fits on the frame
    assert np.array_equal(first.pixels[-40:], second.pixels[-40:])
    assert not np.array_equal(first.pixels, second.pixels)  # the "lesion" drifts


def test_synthetic_source_rejects_tiny_frames() -> None:
    with pytest.raises(ValueError, match=r"synthetic frames must be at least 64x48, got 32x32"):
        SyntheticFrameSource(32, 32)


def test_camera_path_reports_what_the_device_accepted(video: Path) -> None:
    """A video file opened as a 'camera' refuses resolution and exposure like a fixed device."""
    source = CameraFrameSource(str(video), width=1280, height=960, exposure=-5.0)
    with source:
        properties = source.properties
        frames = [source.read(), source.read()]
    assert (properties.width, properties.height, properties.backend) == (200, 150, "FFMPEG")
    assert properties.exposure is None
    assert properties.requested_exposure == -5.0
    assert properties.notes == (
        "device refused manual exposure -5",
        "requested 1280x960, device delivers 200x150",
    )
    expected = decoded_video_frames(video)
    # The first frame is read while opening, to prove the device streams.
    assert np.array_equal(frames[0].pixels, expected[1])
    assert frames[0].source_kind == "camera" and not frames[0].simulated


def test_camera_that_stops_delivering_raises_and_can_be_reopened(video: Path) -> None:
    source = CameraFrameSource(str(video))
    source.open()
    source.read()
    source.read()
    with pytest.raises(CameraDisconnectedError) as raised:
        source.read()
    assert str(raised.value) == f"camera {video} {STOPPED}"
    assert not source.is_open
    source.open()
    assert source.read().sequence == 1
    source.close()


def test_camera_unplugged_during_discard(video: Path) -> None:
    cable = SimulatedCable()
    source = CameraFrameSource(
        str(video), opener=lambda: cable.wrap(cv2.VideoCapture(str(video)))
    )
    source.open()
    cable.unplug()
    expected = f"^camera {re.escape(str(video))} {STOPPED_PATTERN}$"
    with pytest.raises(CameraDisconnectedError, match=expected):
        source.discard(2)
    assert not source.is_open
    with pytest.raises(CameraUnavailableError):
        source.open()
    cable.plug_in()
    with source:
        assert source.read().pixels.shape == (150, 200, 3)


def test_missing_camera_cannot_be_opened() -> None:
    source = CameraFrameSource(57)
    assert source.device_id == "/dev/video57"
    with pytest.raises(CameraUnavailableError) as raised:
        source.open()
    assert str(raised.value) == (
        "cannot open camera /dev/video57: not connected, busy or not a camera"
    )
    assert not source.is_open
