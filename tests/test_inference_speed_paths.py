"""Issue 19 (speed): the fast capture → result paths give the same results, sooner.

* The still comes from the live preview stream: the first frame read after the key press, with
  no redundant stale-frame discards while the preview streams (they cost 2–3 frame periods),
  but still never a frame lit by the previous band; without a streaming preview the full
  discard stays.
* The station runs PyTorch on one thread (two stalled for 0.4–5 s under any other load).
* The network runs channels-last: the same predictions and heatmaps as the NCHW layout.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch

from skinstation.camera import Frame, SimulatedDermatoscope
from skinstation.inference.classifier import Classifier
from skinstation.inference.heatmap import explain
from skinstation.inference.preprocessing import decode_image
from skinstation.resources import DEFAULT_MODEL_PATH
from skinstation.services.models import ModelManager
from skinstation.settings import CameraSettings, QualitySettings, Settings
from skinstation.ui.camera_still import StillRequest

FPS = 20.0


class CountingDermatoscope(SimulatedDermatoscope):
    """A simulated dermatoscope that records every read (start, end, sequence) and discard.

    ``taken`` counts every frame the source delivered, read or dropped; ``taken_at`` maps a
    read frame's sequence number to that count.
    """

    def __init__(self, images: list[Path]) -> None:
        super().__init__(images, fps=FPS, size=(640, 480))
        self.reads: list[tuple[float, float, int]] = []
        self.discarded = 0
        self.taken = 0
        self.taken_at: dict[int, int] = {}

    def read(self) -> Frame:
        started = time.perf_counter()
        frame = super().read()
        self.taken += 1
        self.taken_at[frame.sequence] = self.taken
        self.reads.append((started, time.perf_counter(), frame.sequence))
        return frame

    def discard(self, count: int) -> None:
        self.discarded += count
        self.taken += count
        super().discard(count)


@pytest.fixture()
def images(ham_dir: Path) -> list[Path]:
    return [ham_dir / "images" / f"ISIC_{24306 + offset:07d}.jpg" for offset in range(9)]


@pytest.fixture()
def camera(qtbot, images: list[Path]) -> Iterator[tuple[object, CountingDermatoscope]]:
    from skinstation.ui.camera_worker import CameraController

    source = CountingDermatoscope(images)
    controller = CameraController(source_factory=lambda _settings: source)
    controller.start(CameraSettings(source="simulator", stale_frames=2), QualitySettings())
    qtbot.waitUntil(lambda: len(source.reads) >= 5, timeout=10000)  # the preview streams
    yield controller, source
    controller.shutdown()


def test_still_request_answers_with_the_first_fresh_frame() -> None:
    request = StillRequest()
    request.light_switched()
    assert request.frame_read(1.0, stale_frames=2) is None  # nothing asked
    request.ask(5.0)
    assert request.frame_read(4.9, stale_frames=2) is None  # read before the key press
    assert request.frame_read(5.1, stale_frames=2) == 5.0  # third frame since the switch
    assert not request.open
    assert request.claim(5.0) is False  # the queued fallback finds it answered

    request.ask(6.0)
    request.light_switched()
    assert request.frame_read(6.1, stale_frames=2) is None  # lit by the previous band
    assert request.frame_read(6.2, stale_frames=2) is None
    assert request.stale_left(2, streaming=True) == 0
    assert request.frame_read(6.3, stale_frames=2) == 6.0
    request.light_switched()
    assert request.stale_left(2, streaming=True) == 2
    request.frame_read(6.4, stale_frames=2)
    assert request.stale_left(2, streaming=True) == 1
    assert request.stale_left(2, streaming=False) == 2  # no preview: the driver may hold some
    request.ask(7.0)
    assert request.claim(6.0) is False
    assert request.claim(7.0) is True and not request.open


def test_still_is_the_first_preview_frame_read_after_the_key_press(qtbot, camera) -> None:
    controller, source = camera
    for _ in range(3):
        with qtbot.waitSignal(controller.worker.captured, timeout=5000) as blocker:
            requested = controller.capture()
        frame, band, answered = blocker.args
        assert answered == requested and band == "white"
        ended = {sequence: end for _start, end, sequence in source.reads}
        margin = 0.002  # between the source's own stamp and the worker's, after read()
        assert ended[frame.sequence] > requested - margin  # never a frame from before
        skipped = [seq for _s, end, seq in source.reads
                   if end > requested + margin and seq < frame.sequence]
        assert skipped == []  # the first frame read after the press, not two or three later
        assert source.discarded == 0  # the preview already read the frames it used to drop
        qtbot.wait(120)


def test_still_after_a_band_switch_skips_frames_lit_by_the_old_band(qtbot, camera) -> None:
    from PySide6.QtCore import Qt

    controller, source = camera
    switched_at: list[int] = []
    controller.worker.band_changed.connect(
        lambda _band: switched_at.append(source.taken),
        Qt.ConnectionType.DirectConnection)
    controller.set_band("uv_365")
    with qtbot.waitSignal(controller.worker.captured, timeout=5000) as blocker:
        controller.capture()
    frame, band, _requested = blocker.args
    assert band == "uv_365"
    assert source.taken_at[frame.sequence] >= switched_at[-1] + 3  # 2 stale, then a fresh one


def test_without_a_streaming_preview_the_still_drops_the_stale_frames(qtbot, images) -> None:
    from skinstation.ui.camera_worker import CameraWorker

    source = CountingDermatoscope(images)
    worker = CameraWorker(source_factory=lambda _settings: source)
    worker.start(CameraSettings(source="simulator", stale_frames=2), QualitySettings())
    try:
        assert worker._timer is not None
        worker._timer.stop()  # no preview loop runs: nothing drained the driver's buffer
        with qtbot.waitSignal(worker.captured, timeout=5000) as blocker:
            requested = time.perf_counter()
            worker.still.ask(requested)
            worker.capture(requested)
        assert blocker.args[2] == requested
        assert source.discarded == 2
    finally:
        worker.stop()


def test_the_station_runs_pytorch_on_one_thread(tiny_model: Path, tmp_path: Path) -> None:
    settings = Settings.load(env={}, home=tmp_path / "home", model_path=tiny_model)
    assert settings.torch_threads == 1
    ModelManager(settings).classifier()
    assert torch.get_num_threads() == 1


@pytest.fixture(scope="module")
def layouts() -> tuple[Classifier, Classifier]:
    """The bundled default model loaded channels-last (the default) and in plain NCHW."""
    fast = Classifier.load(DEFAULT_MODEL_PATH, threads=1)
    try:
        Classifier.CHANNELS_LAST = False
        plain = Classifier.load(DEFAULT_MODEL_PATH, threads=1)
    finally:
        Classifier.CHANNELS_LAST = True
    assert fast.channels_last and not plain.channels_last
    return fast, plain


def test_channels_last_gives_the_same_predictions(layouts, ham_dir: Path) -> None:
    fast, plain = layouts
    images = [decode_image(ham_dir / "images" / f"ISIC_{24306 + i:07d}.jpg") for i in range(12)]
    for mine, reference in zip(fast.classify_batch(images), plain.classify_batch(images),
                               strict=True):
        assert (mine.decision, mine.top_class, mine.referral, mine.assessable) == (
            reference.decision, reference.top_class, reference.referral, reference.assessable)
        assert mine.class_probs.keys() == reference.class_probs.keys()
        np.testing.assert_allclose(list(mine.class_probs.values()),
                                   list(reference.class_probs.values()), atol=1e-5)
        assert mine.assessability_score == pytest.approx(reference.assessability_score,
                                                         rel=1e-4, abs=1e-6)


def test_channels_last_gives_the_same_heatmap(layouts, ham_dir: Path) -> None:
    fast, plain = layouts
    image = decode_image(ham_dir / "images" / "ISIC_0024306.jpg")
    mine, reference = explain(fast, image), explain(plain, image)
    assert mine.target_class == reference.target_class
    np.testing.assert_array_equal(mine.prepared, reference.prepared)
    np.testing.assert_allclose(mine.heatmap, reference.heatmap, atol=1e-4)
