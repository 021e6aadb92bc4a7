"""Screenshot every station screen (offscreen) and measure preview FPS and capture→result time.

    QT_QPA_PLATFORM=offscreen .venv/bin/python bench/screenshots.py [OUT] \
        --data-dir ../shared/data [--model FILE] [--fps 15] [--captures 5]

Drives the real window on a temporary station home with the simulated dermatoscope replaying
HAM10000: first run, settings, sync, login, patient, capture, result (with heatmap), history,
compare, review, Korean, lock screen and a camera-unplugged error. Prints the PNG files, the
median preview frame rate (frames actually shown) and the median capture→result time (from
the capture request to the result on screen). Without ``--model`` it uses the bundled model,
or, if that file does not exist yet, builds a tiny one on 42 real HAM10000 images first.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import itertools

from PySide6.QtCore import QEventLoop, QTimer
from PySide6.QtWidgets import QApplication

from skinstation.auth import Role
from skinstation.camera import SimulatedCable, SimulatedDermatoscope
from skinstation.resources import DEFAULT_MODEL_PATH
from skinstation.settings import CameraSettings, Settings
from skinstation.ui.app import create_application
from skinstation.ui.main_window import MainWindow

PASSWORD = "correct horse battery"


def idle(milliseconds: int = 20) -> None:
    """Run the event loop for a while, blocked in Qt (a busy Python loop would hog the GIL
    and slow the worker threads down, which the real app's ``exec()`` never does)."""
    loop = QEventLoop()
    QTimer.singleShot(milliseconds, loop.quit)
    loop.exec()


def wait(app: QApplication, condition: Callable[[], bool], timeout: float = 60.0) -> None:
    end = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > end:
            raise TimeoutError("the window did not reach the expected state")
        idle()


def pump(app: QApplication, seconds: float) -> None:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        idle()


def tiny_model(folder: Path, ham_dir: Path) -> Path:
    """Build a tiny real model (as the tests do) when no model file is available."""
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from skinstation.training.pipeline import BuildRequest, build_model
    from skinstation.training.trainer import TrainConfig
    from tests.conftest import write_manifest

    manifest = write_manifest(folder / "tiny.csv", ham_dir, per_class=6)
    request = BuildRequest(
        source=f"manifest:{manifest}", split_path=folder / "split.csv",
        output=folder / "tiny.safetensors", cache_dir=folder / "cache",
        config=TrainConfig(views=1, head_epochs=3, finetune_epochs=1, batch_size=16),
        version="tiny-screenshot-model")
    build_model(request, log=lambda message: None)
    return request.output


class Shooter:
    def __init__(self, app: QApplication, window: MainWindow, out: Path) -> None:
        self.app, self.window, self.out = app, window, out
        self.files: list[Path] = []

    def shot(self, name: str) -> None:
        pump(self.app, 0.3)
        path = self.out / f"{len(self.files) + 1:02d}_{name}.png"
        if not self.window.grab().save(str(path)):
            raise OSError(f"could not write {path}")
        self.files.append(path)


def log_in(app: QApplication, window: MainWindow, username: str) -> None:
    window.login.username.setText(username)
    window.login.password.setText(PASSWORD)
    window.login.submit.click()
    wait(app, lambda: window.ctx.session is not None)


def capture_once(app: QApplication, window: MainWindow) -> float:
    """Capture from the preview and wait for the result; returns capture→result seconds."""
    window.show_screen("capture")
    capture, result = window.capture_screen, window.result_screen
    capture.confirm_replace = lambda: "discard"  # timing runs replace unsaved results on purpose
    wait(app, lambda: capture.source is not None and capture.capture_button.isEnabled())
    pump(app, 0.3)
    count = len(result.timings)
    capture.capture()
    wait(app, lambda: result.outcome is not None and result.taken is not None
         and (len(result.timings) > count or result.outcome.prediction is None))
    if result.outcome.prediction is None:  # quality failed: classify anyway, not timed
        result.classify_anyway.click()
        wait(app, lambda: result.outcome.prediction is not None)
        return float("nan")
    return result.timings[-1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", nargs="?", default="screenshots", type=Path)
    parser.add_argument("--data-dir", type=Path,
                        default=Path(os.environ.get("SKINSTATION_DATA_DIR", "../shared/data")))
    parser.add_argument("--model", type=Path, default=None)
    parser.add_argument("--fps", type=float, default=15.0, help="simulated dermatoscope rate")
    parser.add_argument("--preview-seconds", type=float, default=8.0)
    parser.add_argument("--captures", type=int, default=5)
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    ham_images = args.data_dir / "ham10000" / "images"
    scratch = Path(tempfile.mkdtemp(prefix="skinstation-screens-"))
    model = args.model or DEFAULT_MODEL_PATH
    if not model.is_file():
        print(f"model {model} not found: building a tiny model on 42 real HAM10000 images…")
        model = tiny_model(scratch / "model", args.data_dir / "ham10000")

    camera = CameraSettings(source="simulator", simulator_folder=str(ham_images),
                            simulator_fps=args.fps, illuminator_port="simulator",
                            band_settle_seconds=0.05)
    settings = Settings.load(env={}, home=scratch / "home", data_dir=args.data_dir,
                             model_path=model, camera=dataclasses.asdict(camera))
    app = create_application()
    cable = SimulatedCable()

    def source_factory(camera: CameraSettings) -> SimulatedDermatoscope:
        return SimulatedDermatoscope(camera.simulator_folder, fps=camera.simulator_fps,
                                     size=(camera.width, camera.height), cable=cable,
                                     selection_reason="simulator requested")

    window = MainWindow(settings, source_factory=source_factory)
    window.resize(1280, 800)
    window.show()
    window.start()
    shoot = Shooter(app, window, args.out)
    wait(app, lambda: window.login.ready)
    shoot.shot("first_run_admin")

    # administrator: settings, sync placeholder; then the clinical accounts
    window.login.username.setText("admin")
    window.login.display_name.setText("Station administrator")
    window.login.password.setText(PASSWORD)
    window.login.confirm.setText(PASSWORD)
    window.login.submit.click()
    wait(app, lambda: window.ctx.session is not None)
    settings_screen = window.screens["settings"]
    wait(app, lambda: settings_screen.model_info is not None or bool(settings_screen.model_error))
    service = window.ctx.require_service()
    admin = window.ctx.require_session()
    service.create_operator(admin, "nurse", "Nurse Kim", Role.STAFF, PASSWORD)
    service.create_operator(admin, "derm", "Dr Lee", Role.DERMATOLOGIST, PASSWORD)
    settings_screen.operators.refresh()
    shoot.shot("settings_admin")
    window.show_screen("sync")
    shoot.shot("sync_not_configured")
    window.logout()
    shoot.shot("login")

    # staff: patient and visit
    log_in(app, window, "nurse")
    patient = window.screens["patient"]
    patient.pseudonym.setText("P-000123")
    patient.find_button.click()
    wait(app, lambda: patient.create_button.isVisible())  # a new patient: confirm creating it
    patient.create_button.click()
    wait(app, lambda: patient.start_button.isEnabled())
    patient.start_button.click()
    wait(app, lambda: window.ctx.visit is not None)
    patient.select_site("back")
    shoot.shot("patient_visit")

    # capture: preview frame rate
    window.show_screen("capture")
    capture = window.capture_screen
    wait(app, lambda: capture.source is not None)
    pump(app, 1.0)  # warm-up frames are not counted
    shown: list[float] = []
    window.ctx.camera.record = shown
    pump(app, args.preview_seconds)
    window.ctx.camera.record = None
    intervals = [b - a for a, b in itertools.pairwise(shown)]
    shoot.shot("capture_preview")
    median_fps = 1.0 / statistics.median(intervals) if intervals else 0.0

    # capture → result, several times; save two captures of the lesion
    timings = [capture_once(app, window) for _ in range(args.captures)]
    result = window.result_screen
    shoot.shot("result")
    result.heatmap_button.click()
    wait(app, lambda: result.explanation is not None, timeout=120)
    shoot.shot("result_heatmap")
    result.heatmap_button.click()
    result.label_combo.setCurrentIndex(result.label_combo.findData("nv"))
    result.save()
    wait(app, lambda: bool(result.saved_ids))
    capture_once(app, window)
    result.save()
    wait(app, lambda: bool(result.saved_ids))
    shoot.shot("result_saved")

    # multispectral sequence (preview pauses; one frame per band)
    window.show_screen("capture")
    wait(app, lambda: capture.source is not None and capture.sequence_button.isEnabled())
    capture.capture_sequence()
    wait(app, lambda: result.taken is not None and result.taken.sequence is not None
         and result.outcome is not None, timeout=120)
    shoot.shot("result_multispectral")

    # history and compare
    window.show_screen("history")
    history = window.screens["history"]
    wait(app, lambda: len(history.rows) >= 2 and len(history.thumbs) >= 2)
    shoot.shot("history")
    history.select_ids([r.capture_id for r in history.rows[:2]])
    history.compare_selected()
    wait(app, lambda: history.pages.currentWidget() is history.compare)
    shoot.shot("compare")
    history.show_list()

    # camera unplugged while previewing
    window.show_screen("capture")
    wait(app, lambda: capture.source is not None)
    cable.unplug()
    wait(app, lambda: bool(capture.camera_error))
    shoot.shot("capture_camera_unplugged")
    cable.plug_in()
    window.logout()

    # dermatologist: review queue
    log_in(app, window, "derm")
    window.show_screen("review")
    review = window.screens["review"]
    wait(app, lambda: review.current is not None)
    shoot.shot("review")

    # Korean, then the idle lock screen
    window.ctx.set_language("ko")
    shoot.shot("review_korean")
    window.ctx.set_language("en")
    window.lock(window.ctx.tr("ui.lock.idle", minutes="5"))
    shoot.shot("locked")

    window.shutdown()
    window.close()
    valid = [t for t in timings if t == t]
    print("screenshots:")
    for path in shoot.files:
        print(f"  {path}")
    print(f"preview: median {median_fps:.1f} frames/s shown over {len(intervals)} frames "
          f"(simulated dermatoscope paced at {args.fps:g} frames/s, 1280x960)")
    if valid:
        print(f"capture→result: median {statistics.median(valid) * 1000:.0f} ms over "
              f"{len(valid)} captures (min {min(valid) * 1000:.0f}, max "
              f"{max(valid) * 1000:.0f}); model {window.ctx.model_error or 'ok'}")


if __name__ == "__main__":
    main()
