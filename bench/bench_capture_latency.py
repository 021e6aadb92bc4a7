"""Key press → result on screen, and heatmap request → heatmap on screen, in the real window.

    QT_QPA_PLATFORM=offscreen .venv/bin/python bench/bench_capture_latency.py \
        [--data-dir ../shared/data] [--model FILE] [--captures 30] [--threads 2] [--baseline]

Drives the real station window (offscreen) on a temporary station home with the simulated
dermatoscope replaying HAM10000 at 15 fps and the bundled default model: logs a nurse in
through the login form, opens a visit, and then, ``--captures`` times, presses Space on the
capture screen and waits until the result screen has *painted* the prediction; then turns the
heatmap on and waits until the overlay is painted; then saves (the save is not in the key →
result path: it is the operator's next action, timed on its own). It checks that the stored
prediction is the one painted.

Prints p50 / p90 / max per stage:

* ``key → result painted``: from the key press to the first paint of the result panel showing
  the prediction (what the operator waits for);
* its breakdown: camera (key press → the still's frame read), hand-over to the GUI thread,
  result screen set-up, the wait for the model thread, the quality check, classify
  (preprocessing + network + decision), the GUI callback and the paint;
* ``heatmap click → heatmap painted`` and Grad-CAM itself;
* ``save click → saved`` (not in the result path).

The presses are spread (seeded) over a frame period; a capture whose quality check fails is
classified anyway and left out of the figures.

``--baseline`` runs the station the way it ran before issue 19's latency work, for a
before/after comparison in one session: the still taken by a queued request that drops
``stale_frames`` first (:data:`skinstation.ui.workers.FAST_PATHS` off), PyTorch on 2 threads,
the network in NCHW layout (:attr:`Classifier.CHANNELS_LAST` off).
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import numpy as np
from PySide6.QtCore import QEvent, QEventLoop, QObject, Qt, QTimer
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QApplication

from skinstation.auth import Role
from skinstation.camera import SimulatedCable, SimulatedDermatoscope
from skinstation.inference.classifier import Classifier
from skinstation.resources import DEFAULT_MODEL_PATH
from skinstation.services.station import StationService
from skinstation.settings import CameraSettings, Settings
from skinstation.ui import workers
from skinstation.ui.app import create_application
from skinstation.ui.main_window import MainWindow

PASSWORD = "correct horse battery"
ROOT = Path(__file__).resolve().parent.parent


def idle(milliseconds: int = 5) -> None:
    """Run the event loop, blocked in Qt (a busy Python loop would hog the GIL)."""
    loop = QEventLoop()
    QTimer.singleShot(milliseconds, loop.quit)
    loop.exec()


def wait(condition: Callable[[], bool], timeout: float = 60.0) -> None:
    end = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > end:
            raise TimeoutError("the window did not reach the expected state")
        idle()


def pump(seconds: float) -> None:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        idle(20)


class Marks:
    """perf_counter() stamps of the capture being timed, by name (first stamp wins)."""

    def __init__(self) -> None:
        self.stamps: dict[str, float] = {}

    def mark(self, name: str, at: float | None = None) -> None:
        self.stamps.setdefault(name, time.perf_counter() if at is None else at)

    def reset(self) -> None:
        self.stamps = {}


def timed(marks: Marks, start: str, end: str, function: Callable[..., Any]
          ) -> Callable[..., Any]:
    """``function`` stamping ``start`` before and ``end`` after each call."""

    def wrapper(*args: Any, **kwargs: Any) -> Any:
        marks.mark(start)
        try:
            return function(*args, **kwargs)
        finally:
            marks.mark(end)

    return wrapper


class PaintWatch(QObject):
    """Stamps ``name`` at the first paint of a widget once ``ready()`` is true."""

    def __init__(self, marks: Marks, name: str, ready: Callable[[], bool]) -> None:
        super().__init__()
        self.marks, self.name, self.ready = marks, name, ready

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        if event.type() == QEvent.Type.Paint and self.ready():
            self.marks.mark(self.name)
        return False


def add_accounts(settings: Settings) -> None:
    service = StationService(settings)
    service.create_first_admin("admin", "Admin", PASSWORD)
    admin = service.login("admin", PASSWORD)
    service.create_operator(admin, "nurse", "Nurse Kim", Role.STAFF, PASSWORD)
    service.logout(admin)
    service.database.dispose()


def open_window(args: argparse.Namespace, scratch: Path) -> MainWindow:
    ham_images = args.data_dir / "ham10000" / "images"
    camera = {"source": "simulator", "simulator_folder": str(ham_images),
              "simulator_fps": args.fps, "illuminator_port": "simulator",
              "band_settle_seconds": 0.05}
    settings = Settings.load(env={}, home=scratch / "home", data_dir=args.data_dir,
                             model_path=args.model, camera=camera,
                             **({"torch_threads": args.threads} if args.threads else {}))
    add_accounts(settings)
    cable = SimulatedCable()

    def source_factory(camera: CameraSettings) -> SimulatedDermatoscope:
        return SimulatedDermatoscope(camera.simulator_folder, fps=camera.simulator_fps,
                                     size=(camera.width, camera.height), cable=cable,
                                     selection_reason="simulator requested")

    window = MainWindow(settings, source_factory=source_factory)
    window.resize(1280, 800)
    window.show()
    window.start()
    wait(lambda: window.login.ready)
    window.login.username.setText("nurse")
    window.login.password.setText(PASSWORD)
    QTest.keyClick(window.login.password, Qt.Key.Key_Return)
    wait(lambda: window.ctx.session is not None)
    patient = window.screens["patient"]
    patient.pseudonym.setText("P-000123")
    patient.find_button.click()
    wait(lambda: patient.create_button.isVisible() or patient.start_button.isEnabled())
    if patient.create_button.isVisible():
        patient.create_button.click()
    wait(lambda: patient.start_button.isEnabled())
    patient.start_button.click()
    wait(lambda: window.ctx.visit is not None)
    patient.site_buttons["back"].click()
    return window


def instrument(window: MainWindow, marks: Marks) -> None:
    """Wrap the calls on the capture path so that each stamps when it starts and ends."""
    service = window.ctx.require_service()
    service.check_quality = timed(marks, "quality", "quality_end",  # type: ignore[method-assign]
                                  service.check_quality)
    service.classify = timed(marks, "classify", "classify_end",  # type: ignore[method-assign]
                             service.classify)
    service.explain = timed(marks, "explain", "explain_end",  # type: ignore[method-assign]
                            service.explain)
    window.ctx.camera.worker.captured.connect(
        lambda *_: marks.mark("camera_end"), Qt.ConnectionType.DirectConnection)
    window.ctx.model.run = timed(marks, "model_submit", "model_submitted",  # type: ignore[method-assign]
                                 window.ctx.model.run)
    result = window.result_screen
    result.show_capture = timed(marks, "gui_captured", "gui_setup_end",  # type: ignore[method-assign]
                                result.show_capture)
    result._analysed = timed(marks, "gui_result", "gui_result_end",  # type: ignore[method-assign]
                             result._analysed)
    panel_watch = PaintWatch(marks, "result_painted", lambda: (
        result.outcome is not None and result.outcome.prediction is not None
        and result.panel.view is not None))
    result.panel.installEventFilter(panel_watch)
    heatmap_watch = PaintWatch(marks, "heatmap_painted", lambda: (
        result.explanation is not None and result.heatmap_button.isChecked()))
    result.image.installEventFilter(heatmap_watch)
    window._bench_watches = (panel_watch, heatmap_watch)  # type: ignore[attr-defined]


STAGES: list[tuple[str, str, str]] = [
    ("key → result painted", "key", "result_painted"),
    ("  camera: key → fresh still read", "key", "camera_end"),
    ("  hand-over to the GUI thread", "camera_end", "gui_captured"),
    ("  result screen set-up (until model job queued)", "gui_captured", "model_submit"),
    ("  wait for the model thread", "model_submit", "quality"),
    ("  quality check", "quality", "quality_end"),
    ("  classify (preprocess + network + decision)", "classify", "classify_end"),
    ("  hand-over back to the GUI thread", "classify_end", "gui_result"),
    ("  show the prediction (GUI)", "gui_result", "gui_result_end"),
    ("  until painted", "gui_result_end", "result_painted"),
    ("heatmap click → heatmap painted", "heatmap_click", "heatmap_painted"),
    ("  Grad-CAM (explain)", "explain", "explain_end"),
    ("save click → saved (not in the result path)", "save_click", "saved"),
]


def capture_once(window: MainWindow, marks: Marks, jitter: float) -> dict[str, float]:
    capture, result = window.capture_screen, window.result_screen
    window.show_screen("capture")
    wait(lambda: capture.source is not None and capture.capture_button.isEnabled())
    start = capture.preview.frames_painted
    wait(lambda: capture.preview.frames_painted >= start + 3)
    pump(0.4 + jitter)  # a steady preview; the jitter spreads the press over a frame period
    marks.reset()
    previous = result.taken
    window.activateWindow()
    focus = QApplication.focusWidget() or window
    marks.mark("key")
    QTest.keyClick(focus, Qt.Key.Key_Space)
    wait(lambda: result.taken is not previous and result.outcome is not None)
    if result.outcome.prediction is None:  # quality failed: classify anyway (not timed)
        result.classify_anyway.click()
        wait(lambda: result.outcome is not None and result.outcome.prediction is not None)
        marks.stamps.pop("result_painted", None)
        marks.stamps["quality_failed"] = 1.0
    wait(lambda: "result_painted" in marks.stamps or "quality_failed" in marks.stamps)
    shown = result.outcome.prediction
    idle(30)
    marks.mark("heatmap_click")
    if result.heatmap_button.isEnabled():
        result.heatmap_button.click()
        wait(lambda: "heatmap_painted" in marks.stamps)
    marks.mark("save_click")
    result.save_button.click()
    wait(lambda: bool(result.saved_ids) or result.message.kind == "error")
    marks.mark("saved")
    if not result.saved_ids:
        raise RuntimeError(f"saving failed: {result.message.message}")
    stored = window.ctx.require_service().store.latest_prediction(
        result.last_saved.main_capture_id)
    if shown is not None and (stored is None or stored["decision"] != shown.decision
                              or stored["class_probabilities"] != shown.class_probs):
        raise RuntimeError("the stored prediction differs from the one shown")
    window.ctx.camera.next_lesion()
    return dict(marks.stamps)


def report(runs: list[dict[str, float]]) -> None:
    timed_runs = [r for r in runs if "quality_failed" not in r]
    print(f"captures timed: {len(timed_runs)} (of {len(runs)}; quality-failed ones excluded)")
    print(f"{'stage':50s} {'p50':>8s} {'p90':>8s} {'max':>8s}   (ms)")
    for label, start, end in STAGES:
        values = [(r[end] - r[start]) * 1000 for r in timed_runs if start in r and end in r]
        if not values:
            print(f"{label:50s} {'-':>8s}")
            continue
        print(f"{label:50s} {statistics.median(values):8.1f} "
              f"{np.percentile(values, 90):8.1f} {max(values):8.1f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path,
                        default=Path(os.environ.get("SKINSTATION_DATA_DIR",
                                                    ROOT.parent / "shared" / "data")))
    parser.add_argument("--model", type=Path, default=DEFAULT_MODEL_PATH)
    parser.add_argument("--captures", type=int, default=30)
    parser.add_argument("--fps", type=float, default=15.0, help="simulated dermatoscope rate")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch_threads setting (default: the station's)")
    parser.add_argument("--each", action="store_true", help="print every capture's stages")
    parser.add_argument("--baseline", action="store_true",
                        help="turn the issue-19 fast paths off (before/after comparison)")
    args = parser.parse_args()
    if args.baseline:  # as before issue 19's latency work: 2 torch threads, NCHW, queued still
        workers.FAST_PATHS = False
        Classifier.CHANNELS_LAST = False
        args.threads = args.threads or 2
    app = create_application()
    scratch = Path(tempfile.mkdtemp(prefix="skinstation-latency-"))
    window = open_window(args, scratch)
    marks = Marks()
    instrument(window, marks)
    wait(lambda: window.ctx.model.pending == 0)  # the model loaded and warmed up at login
    window.show_screen("capture")
    runs = []
    phases = random.Random(19)
    for _ in range(args.captures):
        runs.append(capture_once(window, marks, phases.uniform(0, 1 / args.fps)))
    print(f"model: {args.model.name}, captures: {args.captures}, "
          f"fast paths: {'off (baseline)' if args.baseline else 'on'}, "
          f"torch threads: {window.ctx.require_service().models.threads}, "
          f"cores: {os.cpu_count()}, load average: "
          f"{' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    if args.each:
        for number, run in enumerate(runs, 1):
            parts = [f"{label.strip()[:18]} {(run[end] - run[start]) * 1000:.0f}"
                     for label, start, end in STAGES if start in run and end in run]
            print(f"#{number}: " + "; ".join(parts))
    report(runs)
    window.shutdown()
    window.close()
    app.processEvents()
    sys.exit(0)


if __name__ == "__main__":
    main()
