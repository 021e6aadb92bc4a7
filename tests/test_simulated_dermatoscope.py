"""The simulated dermatoscope held on one lesion: slight seeded drift, a new lesion on request.

Bounds below were measured on the real HAM10000 images at 640×480 (seeds 0, 7, 42, six lesions
each): consecutive frames of one lesion differ by a mean absolute difference of 0.01-0.26 grey
levels and correlate with the first frame at >= 0.988; the next lesion differs from it by
>= 14.9 and correlates at <= 0.934.
"""

from __future__ import annotations

import itertools
import re
from pathlib import Path

import cv2
import numpy as np
import pytest

from skinstation.camera import (
    CameraDisconnectedError,
    CameraError,
    CameraUnavailableError,
    SimulatedCable,
    SimulatedDermatoscope,
    open_frame_source,
)
from skinstation.camera.drift import HandDrift, Pose, apply_pose
from skinstation.camera.simulator import fit_to_size
from skinstation.settings import CameraSettings

SIZE = (640, 480)
FIRST, SECOND = "ISIC_0024306.jpg", "ISIC_0024307.jpg"


@pytest.fixture(scope="module")
def folder(ham_dir: Path) -> Path:
    return ham_dir / "images"


def mad(a: np.ndarray, b: np.ndarray) -> float:
    """Mean absolute difference in grey levels."""
    return float(np.abs(a.astype(np.int16) - b.astype(np.int16)).mean())


def correlation(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.corrcoef(a.ravel().astype(float), b.ravel().astype(float))[0, 1])


def still(path: Path) -> np.ndarray:
    """The image as the scope sees it without drift: decoded, RGB, fitted to SIZE."""
    return fit_to_size(cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB), *SIZE)


def held(folder: Path, seed: int = 7, **kwargs: object) -> SimulatedDermatoscope:
    return SimulatedDermatoscope(folder, fps=0, size=SIZE, hold=True, seed=seed, **kwargs)


def test_thirty_frames_show_one_lesion_with_slight_smooth_drift(folder: Path) -> None:
    with held(folder) as source:
        frames = [source.read() for _ in range(30)]
        assert (source.lesion, source.lesion_index) == (FIRST, 0)
    assert {frame.label for frame in frames} == {FIRST}
    assert [frame.sequence for frame in frames] == list(range(1, 31))
    pixels = [frame.pixels for frame in frames]
    steps = [mad(a, b) for a, b in itertools.pairwise(pixels)]
    assert max(steps) < 0.5  # smooth: no strobe (two lesions differ by >= 14.9)
    assert min(steps) > 0.005  # but never frozen: the hand moves every frame
    assert not any(np.array_equal(a, b) for a, b in itertools.pairwise(pixels))
    assert min(correlation(pixels[0], p) for p in pixels) > 0.99
    assert max(mad(pixels[0], p) for p in pixels) < 5.0


def test_each_frame_is_the_still_lesion_moved_by_the_seeded_drift(folder: Path) -> None:
    lesion = still(folder / FIRST)
    drift = HandDrift(7, 0)
    with held(folder) as source:
        frames = [source.read().pixels for _ in range(5)]
    for number, pixels in enumerate(frames):
        assert np.array_equal(pixels, drift.apply(lesion, number))
        pose = drift.pose(number, *SIZE)
        assert abs(pose.dx) <= 0.003 * 640 and abs(pose.dy) <= 0.003 * 640
        assert abs(pose.angle) <= 0.3 and 0.0 <= pose.blur <= 0.0012 * 640
    # Undoing the drift's shift and turn brings the frame back onto the still image.
    pose = drift.pose(4, *SIZE)
    back = apply_pose(frames[4], Pose(-pose.dx, -pose.dy, -pose.angle, 0.0))
    inner = (slice(40, -40), slice(40, -40))
    assert correlation(back[inner], lesion[inner]) > 0.995
    assert mad(back[inner], lesion[inner]) < mad(frames[4][inner], lesion[inner])


def test_next_lesion_changes_the_lesion_and_only_then(folder: Path) -> None:
    with held(folder) as source:
        first = [source.read().pixels for _ in range(3)]
        assert source.next_lesion() == SECOND
        second = source.read()
        again = source.read()
        assert (source.lesion, source.lesion_index) == (SECOND, 1)
    assert (second.label, again.label) == (SECOND, SECOND)
    assert mad(first[0], second.pixels) > 10.0
    assert correlation(first[0], second.pixels) < 0.95
    assert mad(second.pixels, again.pixels) < 0.5
    # The new lesion's drift starts from its own beginning.
    assert np.array_equal(second.pixels, HandDrift(7, 1).apply(still(folder / SECOND), 0))


def test_lesions_wrap_around_and_can_be_chosen(folder: Path) -> None:
    images = [folder / name for name in ("ISIC_0027419.jpg", "ISIC_0025030.jpg")]
    with held(images) as source:
        assert source.read().label == "ISIC_0027419.jpg"
        assert source.next_lesion() == "ISIC_0025030.jpg"
        assert source.next_lesion() == "ISIC_0027419.jpg"  # after the last, the first again
        assert source.select_lesion(5) == "ISIC_0025030.jpg"
        assert source.read().label == "ISIC_0025030.jpg"
    chosen = held(folder)
    assert chosen.select_lesion(3) == ""  # before opening: kept, applied on open
    with chosen:
        assert chosen.read().label == "ISIC_0024309.jpg"


def test_drift_is_deterministic_by_seed(folder: Path) -> None:
    def frames(seed: int) -> list[np.ndarray]:
        with held(folder, seed=seed) as source:
            return [source.read().pixels for _ in range(10)]

    one, same, other = frames(7), frames(7), frames(8)
    assert all(np.array_equal(a, b) for a, b in zip(one, same, strict=True))
    assert not any(np.array_equal(a, b) for a, b in zip(one, other, strict=True))
    assert max(mad(a, b) for a, b in zip(one, other, strict=True)) < 5.0  # same lesion


def test_discarded_frames_keep_the_lesion_and_the_hand_moving(folder: Path) -> None:
    drift, lesion = HandDrift(7, 0), still(folder / FIRST)
    with held(folder) as source:
        source.read()
        source.discard(3)
        frame = source.read()
    assert frame.label == FIRST and frame.sequence == 2
    assert np.array_equal(frame.pixels, drift.apply(lesion, 4))


def test_held_scope_unplugged_fails_like_the_device_and_keeps_its_lesion(folder: Path) -> None:
    cable = SimulatedCable(unplug_after_frames=3)
    source = held(folder, cable=cable)
    source.open()
    source.next_lesion()
    assert [source.read().label for _ in range(3)] == [SECOND] * 3
    with pytest.raises(CameraDisconnectedError, match=re.escape("stopped delivering frames")):
        source.read()
    assert not source.is_open
    with pytest.raises(CameraUnavailableError, match=r"device not connected"):
        source.open()
    cable.plug_in(unplug_after_frames=1)
    source.open()
    assert source.read().label == SECOND  # the scope is still on the same lesion
    with pytest.raises(CameraDisconnectedError):
        source.discard(1)
    assert not source.is_open


def test_only_a_held_image_scope_changes_lesions(folder: Path, tmp_path: Path) -> None:
    replaying = SimulatedDermatoscope(folder, fps=0)
    assert not replaying.holds_lesion and replaying.lesion == ""
    with pytest.raises(CameraError, match=r"does not hold a lesion: it replays its media"):
        replaying.next_lesion()
    video = tmp_path / "scope.avi"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"MJPG"), 10, (200, 150))
    for name in (FIRST, SECOND):
        writer.write(cv2.imread(str(folder / name)))
    writer.release()
    with SimulatedDermatoscope(video, fps=0, hold=True) as recording:
        assert not recording.holds_lesion
        first, second = recording.read().pixels, recording.read().pixels
        with pytest.raises(CameraError, match=r"does not hold a lesion"):
            recording.next_lesion()
    assert mad(first, second) > 10.0  # a recording plays as recorded


def test_the_station_source_holds_the_lesion(folder: Path) -> None:
    settings = CameraSettings(simulator_folder=str(folder), simulator_fps=0,
                              width=SIZE[0], height=SIZE[1])
    with open_frame_source(settings, list_devices=list) as source:
        assert isinstance(source, SimulatedDermatoscope) and source.holds_lesion
        frames = [source.read() for _ in range(5)]
        source.next_lesion()
        moved = source.read()
    assert {frame.label for frame in frames} == {FIRST} and moved.label == SECOND
    assert max(mad(frames[0].pixels, f.pixels) for f in frames) < 5.0
    assert mad(frames[0].pixels, moved.pixels) > 10.0
