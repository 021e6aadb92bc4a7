"""Choosing the frame source from settings, and listing devices without hanging."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import cv2
import pytest

from skinstation.camera import (
    CameraDevice,
    CameraFrameSource,
    CameraUnavailableError,
    SimulatedDermatoscope,
    SyntheticFrameSource,
    list_cameras,
    open_frame_source,
)
from skinstation.camera.devices import VIDIOC_QUERYCAP, query_v4l2
from skinstation.settings import CameraSettings


def no_cameras() -> list[CameraDevice]:
    return []


@pytest.fixture()
def video(tmp_path: Path, real_image_path: Path) -> Path:
    path = tmp_path / "scope.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10, (200, 150))
    for _ in range(3):
        writer.write(cv2.imread(str(real_image_path)))
    writer.release()
    return path


def test_auto_without_camera_or_folder_gives_labelled_synthetic_frames() -> None:
    settings = CameraSettings(width=320, height=240, simulator_fps=0)
    with open_frame_source(settings, list_devices=no_cameras) as source:
        assert isinstance(source, SyntheticFrameSource)
        assert source.selection_reason == (
            "auto: no camera found and no simulator_folder set: synthetic frames"
        )
        frame = source.read()
    assert frame.synthetic and frame.pixels.shape == (240, 320, 3)


def test_auto_without_camera_replays_the_simulator_folder(ham_dir: Path) -> None:
    folder = ham_dir / "images"
    settings = CameraSettings(simulator_folder=str(folder), simulator_fps=0)
    with open_frame_source(settings, list_devices=no_cameras) as source:
        assert isinstance(source, SimulatedDermatoscope)
        assert source.kind == "simulator"
        assert source.selection_reason == (
            f"auto: no camera found: replaying {folder} (simulated dermatoscope)"
        )
        frame = source.read()
    assert frame.label == "ISIC_0024306.jpg"  # the first file by name
    assert frame.pixels.shape == (960, 1280, 3)  # delivered at the camera resolution


def test_auto_opens_the_first_usable_camera(video: Path) -> None:
    devices = [
        CameraDevice("/dev/video1", 1, "UVC metadata", False, "not a capture device"),
        CameraDevice(str(video), 0, "Test scope", True, "ok"),
    ]
    with open_frame_source(CameraSettings(), list_devices=lambda: devices) as source:
        assert isinstance(source, CameraFrameSource)
        assert source.selection_reason == "auto: found camera Test scope"
        assert source.read().source_kind == "camera"


def test_auto_skips_a_listed_camera_that_will_not_open() -> None:
    ghost = [CameraDevice("/dev/video57", 57, "Ghost", True, "ok")]
    settings = CameraSettings(width=320, height=240, simulator_fps=0)
    with open_frame_source(settings, list_devices=lambda: ghost) as source:
        assert source.kind == "synthetic"


def test_simulator_without_folder_falls_back_to_synthetic() -> None:
    settings = CameraSettings(source="simulator", width=320, height=240)
    with open_frame_source(settings, list_devices=no_cameras) as source:
        assert source.kind == "synthetic"
        assert source.selection_reason == (
            "simulator requested and no simulator_folder set: synthetic frames"
        )


def test_synthetic_requested() -> None:
    with open_frame_source(CameraSettings(source="synthetic", width=320, height=240)) as source:
        assert source.kind == "synthetic"
        assert source.selection_reason == "synthetic frames requested"


def test_explicit_missing_camera_is_an_error_not_a_fallback() -> None:
    with pytest.raises(CameraUnavailableError) as raised:
        open_frame_source(CameraSettings(source="57"))
    assert str(raised.value) == (
        "cannot open camera /dev/video57: not connected, busy or not a camera"
    )


def test_explicit_video_path_is_replayed(video: Path) -> None:
    settings = CameraSettings(source=str(video), width=200, height=150, simulator_fps=0)
    with open_frame_source(settings) as source:
        assert source.kind == "simulator"
        assert source.selection_reason == f"replaying {video} as requested"
        assert source.read().pixels.shape == (150, 200, 3)


def test_unknown_source_names_what_is_accepted() -> None:
    with pytest.raises(CameraUnavailableError) as raised:
        open_frame_source(CameraSettings(source="webcam please"))
    assert str(raised.value) == (
        "camera source 'webcam please' is neither auto, simulator, synthetic, a camera index, "
        "a device path nor an existing folder or video"
    )


def test_v4l2_listing_reports_nodes_that_are_not_cameras(tmp_path: Path) -> None:
    (tmp_path / "video0").write_bytes(b"")
    (tmp_path / "video10").symlink_to("/dev/null")
    (tmp_path / "video3").symlink_to(tmp_path / "unplugged")
    (tmp_path / "audio0").write_bytes(b"")
    assert list_cameras(dev_dir=tmp_path, method="v4l2") == [
        CameraDevice(str(tmp_path / "video0"), 0, "", False, "not a V4L2 device"),
        CameraDevice(str(tmp_path / "video3"), 3, "", False, "no such file or directory"),
        CameraDevice(str(tmp_path / "video10"), 10, "", False, "not a V4L2 device"),
    ]


def test_querycap_request_code_matches_videodev2() -> None:
    assert VIDIOC_QUERYCAP == 0x80685600
    assert query_v4l2(Path("/dev/null")).status == "not a V4L2 device"


def test_index_probing_gives_up_on_a_hanging_driver() -> None:
    release = threading.Event()

    def probe(index: int) -> bool:
        if index == 1:
            release.wait(5)  # a driver stuck in open()
        return index == 0

    started = time.monotonic()
    try:
        devices = list_cameras(method="opencv", max_index=2, timeout_seconds=0.2, probe=probe)
    finally:
        release.set()
    assert time.monotonic() - started < 1.0
    assert devices == [
        CameraDevice("0", 0, "", True, "ok"),
        CameraDevice("1", 1, "", False, "probe timed out"),
    ]
