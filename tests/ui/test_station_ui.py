"""Station UI behaviour: roles, idle lock, error display, responsiveness, language, sync panel,
comparison and multispectral capture — real widgets, real service, real model and images."""

from __future__ import annotations

import dataclasses
import datetime as dt
import sqlite3
import threading
import time

import pytest
from PySide6.QtCore import Qt, QTimer
from sqlalchemy.exc import OperationalError

from skinstation.camera import SimulatedCable, SimulatedDermatoscope
from skinstation.services.models import ModelManager
from skinstation.services.station import StationService
from skinstation.ui.sync_status import SyncStatus
from tests.ui.helpers import (
    PASSWORD,
    TIMEOUT,
    log_in,
    open_visit,
    try_log_in,
    wait_for_preview,
)


def capture_and_wait(qtbot, window, key=None):
    """Capture with the button (or a key: space bar, foot pedal) and wait for the result."""
    capture, result = window.capture_screen, window.result_screen
    wait_for_preview(qtbot, window)
    qtbot.waitUntil(lambda: capture.capture_button.isEnabled(), timeout=TIMEOUT)
    previous = result.taken
    if key is None:
        qtbot.mouseClick(capture.capture_button, Qt.MouseButton.LeftButton)
    else:
        window.activateWindow()
        qtbot.waitUntil(window.isActiveWindow, timeout=TIMEOUT)
        qtbot.keyClick(capture.capture_button, key)
    qtbot.waitUntil(lambda: result.taken is not previous and (
        result.outcome is not None or result.message.kind == "error"), timeout=TIMEOUT)
    return result


# -- roles ------------------------------------------------------------------------------------


@pytest.mark.parametrize(("user", "screens"), [
    ("nurse", ["patient", "capture", "result", "history", "patients", "lesions"]),
    ("derm", ["patient", "capture", "result", "history", "review", "patients", "lesions"]),
    ("admin", ["settings", "sync"]),
])
def test_each_role_sees_only_its_screens(qtbot, make_window, station, user, screens):
    window = make_window(station)
    log_in(qtbot, window, user)
    assert window.visible_screens() == screens
    for screen_id, button in window.nav_buttons.items():
        assert button.isVisible() == (screen_id in screens), screen_id
    for forbidden in set(window.screens) - set(screens):
        window.show_screen(forbidden)
        assert window.current_screen is not window.screens[forbidden]
    assert window.current_screen is window.screens[screens[0]]
    # keyboard navigation: Ctrl+<n> reaches the allowed screens only
    window.activateWindow()
    qtbot.waitUntil(window.isActiveWindow, timeout=TIMEOUT)
    for number, screen_id in enumerate(window.screens, start=1):
        qtbot.keyClick(window, Qt.Key(Qt.Key.Key_0.value + number),
                       Qt.KeyboardModifier.ControlModifier)
        if screen_id in screens:
            assert window.current_screen is window.screens[screen_id], screen_id
        else:
            assert window.current_screen is not window.screens[screen_id], screen_id


# -- idle lock --------------------------------------------------------------------------------


def test_station_locks_after_idle_time_and_resumes_for_the_same_operator(
        qtbot, make_window, station):
    window = make_window(station.replace(idle_lock_minutes=0.01))  # 0.6 s
    log_in(qtbot, window, "nurse")
    open_visit(qtbot, window, "P-IDLE")
    qtbot.waitUntil(lambda: window.ctx.session is None, timeout=5000)
    assert window.current_screen is window.login
    assert not window.nav.isVisible() and not window.header.isVisible()
    assert "without activity" in window.login.message.message
    assert window.login.username.text() == "nurse"
    # the same operator returns to the visit; another operator would start afresh
    log_in(qtbot, window, "nurse")
    assert window.current_screen is window.screens["patient"]
    assert window.ctx.visit is not None and window.ctx.visit.patient.pseudonym == "P-IDLE"
    window.lock()
    log_in(qtbot, window, "derm")
    assert window.ctx.visit is None


def test_activity_keeps_the_station_unlocked(qtbot, make_window, station):
    window = make_window(station.replace(idle_lock_minutes=0.01))  # 0.6 s
    log_in(qtbot, window, "nurse")
    patient = window.screens["patient"]
    for _ in range(8):  # 1.2 s of typing, never 0.6 s idle
        qtbot.keyClick(patient.pseudonym, Qt.Key.Key_A)
        qtbot.wait(150)
    assert window.ctx.session is not None


# -- errors shown in the window ----------------------------------------------------------------


def test_wrong_password_and_lockout_messages(qtbot, make_window, station):
    settings = station.replace(auth={"max_failed_logins": 3, "lockout_minutes": 15.0,
                                     "session_timeout_minutes": 15.0,
                                     "min_password_length": 10})
    window = make_window(settings)
    assert try_log_in(qtbot, window, "nurse", "wrong password!") == (
        "Wrong username or password. 2 attempts left before this account is locked for "
        "15 minutes.")
    assert try_log_in(qtbot, window, "nurse", "wrong password!") == (
        "Wrong username or password. 1 attempt left before this account is locked for "
        "15 minutes.")
    message = try_log_in(qtbot, window, "nurse", "wrong password!")
    assert message.startswith("Account locked until")
    assert try_log_in(qtbot, window, "nurse", PASSWORD).startswith("Account locked until")
    assert window.ctx.session is None and window.isVisible()


def test_camera_unplugged_is_reported_and_reconnects(qtbot, make_window, station, ham_dir):
    cable = SimulatedCable(unplug_after_frames=12)

    def source_factory(camera):
        return SimulatedDermatoscope(ham_dir / "images", fps=30, size=(640, 480), cable=cable)

    window = make_window(station, source_factory=source_factory)
    log_in(qtbot, window, "nurse")
    open_visit(qtbot, window, "P-CABLE")
    window.show_screen("capture")
    capture = window.capture_screen
    qtbot.waitUntil(lambda: bool(capture.camera_error), timeout=TIMEOUT)
    assert capture.message.kind == "error"
    assert "disconnected" in capture.message.message
    assert capture.reconnect_button.isVisible()
    assert not capture.capture_button.isEnabled()
    assert "NO CAMERA PICTURE" in capture.source_status.text()
    cable.plug_in()
    qtbot.mouseClick(capture.reconnect_button, Qt.MouseButton.LeftButton)
    wait_for_preview(qtbot, window)
    assert not capture.camera_error and capture.capture_button.isEnabled()


def test_missing_model_is_a_clear_message_not_a_crash(qtbot, make_window, station, tmp_path):
    missing = tmp_path / "no-such-model.safetensors"
    settings = station.replace(model_path=missing)
    window = make_window(settings, models=ModelManager(settings))
    log_in(qtbot, window, "nurse")
    qtbot.waitUntil(lambda: bool(window.ctx.model_error), timeout=TIMEOUT)
    assert "Model missing" in window.model_status.text()
    open_visit(qtbot, window, "P-NOMODEL")
    window.show_screen("capture")
    result = capture_and_wait(qtbot, window)
    qtbot.waitUntil(lambda: result.message.kind == "error", timeout=TIMEOUT)
    assert "Model missing or unusable" in result.message.message
    assert str(missing) in result.message.message
    assert result.save_button.isEnabled()  # the image itself can still be kept


def test_database_locked_at_start_is_explained(qtbot, make_window, station):
    def locked(settings):
        raise OperationalError("BEGIN IMMEDIATE", {}, sqlite3.OperationalError(
            "database is locked"))

    from skinstation.ui.main_window import MainWindow

    window = MainWindow(station, service_factory=locked)
    qtbot.addWidget(window)
    window.show()
    window.start()
    qtbot.waitUntil(lambda: window.login.message.kind == "error", timeout=TIMEOUT)
    assert "busy or locked" in window.login.message.message
    assert "Traceback" not in window.login.message.message
    assert not window.login.submit.isEnabled()
    window.shutdown()


def test_synthetic_frames_are_classified_but_never_saved(qtbot, make_window, station):
    camera = dataclasses.replace(station.camera, source="synthetic", simulator_folder="")
    window = make_window(station.replace(camera=camera, data_dir=None))
    log_in(qtbot, window, "nurse")
    open_visit(qtbot, window, "P-SYNTH")
    window.show_screen("capture")
    capture = window.capture_screen
    qtbot.waitUntil(lambda: capture.source is not None, timeout=TIMEOUT)
    assert capture.source.kind == "synthetic"
    assert "NO CAMERA and no simulator folder" in capture.source_status.text()
    result = capture_and_wait(qtbot, window, key=Qt.Key.Key_F12)  # the foot pedal
    assert result.taken.frame.synthetic
    qtbot.mouseClick(result.save_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: result.message.kind == "error", timeout=TIMEOUT)
    assert "not a patient image" in result.message.message
    assert not result.saved_ids


# -- responsiveness ---------------------------------------------------------------------------


def test_event_loop_keeps_running_during_classification(qtbot, make_window, station,
                                                        monkeypatch):
    window = make_window(station)
    log_in(qtbot, window, "nurse")
    open_visit(qtbot, window, "P-LOOP")
    service = window.ctx.require_service()
    gui_thread = threading.get_ident()
    calls: list[tuple[int, float, float]] = []
    real_classify = StationService.classify

    def slow_classify(self, pixels):
        started = time.perf_counter()
        prediction = real_classify(self, pixels)
        time.sleep(0.8)  # a slow model: the window must not freeze meanwhile
        calls.append((threading.get_ident(), started, time.perf_counter()))
        return prediction

    monkeypatch.setattr(StationService, "classify", slow_classify)
    ticks: list[float] = []
    timer = QTimer()
    timer.setInterval(20)
    timer.timeout.connect(lambda: ticks.append(time.perf_counter()))
    timer.start()
    window.show_screen("capture")
    result = capture_and_wait(qtbot, window)
    timer.stop()
    assert result.outcome.prediction is not None
    (thread, started, finished) = calls[-1]
    assert thread != gui_thread
    during = [t for t in ticks if started <= t <= finished]
    assert len(during) >= 15, f"only {len(during)} timer ticks in {finished - started:.2f} s"
    assert service is window.ctx.service


# -- language ---------------------------------------------------------------------------------


def test_switching_to_korean_changes_the_visible_texts(qtbot, make_window, station):
    window = make_window(station)
    log_in(qtbot, window, "admin")
    settings_screen = window.screens["settings"]
    assert window.nav_buttons["settings"].text() == "Settings"
    settings_screen.language.setCurrentIndex(settings_screen.language.findData("ko"))
    qtbot.mouseClick(settings_screen.save_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: window.ctx.language == "ko", timeout=TIMEOUT)
    assert window.nav_buttons["settings"].text() == "설정"
    assert window.nav_buttons["sync"].text() == "동기화"
    assert settings_screen.title.text() == "스테이션 설정"
    assert window.logout_button.text() == "로그아웃"
    assert window.nav_buttons["patient"].text() == "환자"  # hidden screens follow too
    assert window.screens["sync"].placeholder.text().startswith("동기화가 설정되지")
    assert 'language = "ko"' in (station.home / "settings.toml").read_text(encoding="utf-8")
    assert window.ctx.require_service().settings.language == "ko"


# -- sync panel -------------------------------------------------------------------------------


def test_sync_panel_placeholder_and_status(qtbot, make_window, station):
    window = make_window(station)
    log_in(qtbot, window, "admin")
    window.show_screen("sync")
    panel = window.screens["sync"]
    assert panel.placeholder.isVisible()
    assert "Sync not configured" in panel.placeholder.text()
    assert not panel.sync_now.isVisible()

    class FakeSync:
        def __init__(self):
            self.synced = 0

        def status(self):
            return {"queue_length": 3 - self.synced * 3,
                    "last_success": dt.datetime(2026, 1, 2, 3, 4, tzinfo=dt.UTC)
                    if self.synced else None,
                    "last_error": None if self.synced else "engine unreachable"}

        def sync_now(self):
            self.synced += 1

    fake = FakeSync()
    window.ctx.sync = fake
    panel.on_shown()
    qtbot.waitUntil(lambda: panel.status is not None, timeout=TIMEOUT)
    assert not panel.placeholder.isVisible()
    assert panel.queue.text() == "3 captures"
    assert panel.success.text() == "never"
    assert "engine unreachable" in panel.error.text()
    qtbot.mouseClick(panel.sync_now, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: panel.status == SyncStatus.of(fake.status())
                    and fake.synced == 1, timeout=TIMEOUT)
    assert panel.queue.text() == "0 captures"
    panel.on_hidden()


# -- history comparison and multispectral -------------------------------------------------------


def test_multispectral_sequence_then_compare_two_captures(qtbot, make_window, station):
    window = make_window(station)
    log_in(qtbot, window, "nurse")
    open_visit(qtbot, window, "P-MS", site="face")
    window.show_screen("capture")
    capture, result = window.capture_screen, window.result_screen
    wait_for_preview(qtbot, window)
    assert capture.source.can_sequence and len(capture.band_buttons) == 7
    assert capture.band_buttons["white"].isChecked()
    events: list[str] = []
    worker = window.ctx.camera.worker
    worker.frame_ready.connect(lambda *_: events.append("frame"))
    worker.sequence_running.connect(lambda running: events.append(f"sequence {running}"))
    qtbot.mouseClick(capture.sequence_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: result.taken is not None and result.outcome is not None,
                    timeout=TIMEOUT)
    assert [bf.band.name for bf in result.taken.sequence] == list(station.camera.bands)
    # the preview paused: no preview frame between the start and the end of the sequence,
    # and the band frames were read one after the other (none taken by the preview)
    start, end = events.index("sequence True"), events.index("sequence False")
    assert "frame" not in events[start:end]
    numbers = [bf.frame.sequence for bf in result.taken.sequence]
    assert numbers == list(range(numbers[0], numbers[0] + 7))
    assert result.taken.band == "white" and len(result.band_views) == 7
    qtbot.mouseClick(result.save_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: bool(result.saved_ids), timeout=TIMEOUT)
    assert len(result.saved_ids) == 7
    # a second, single capture of the same lesion
    qtbot.mouseClick(result.retake_button, Qt.MouseButton.LeftButton)
    capture_and_wait(qtbot, window)
    qtbot.mouseClick(result.save_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: len(result.saved_ids) == 1, timeout=TIMEOUT)
    single = result.saved_ids[0]

    window.show_screen("history")
    history = window.screens["history"]
    history.patient_filter.setText("P-MS")
    qtbot.mouseClick(history.search_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: len(history.rows) == 8, timeout=TIMEOUT)
    white = next(r.capture_id for r in history.rows if r.band == "white"
                 and r.capture_id != single)
    history.select_ids([white, single])
    assert history.compare_button.isEnabled()
    qtbot.mouseClick(history.compare_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: history.pages.currentWidget() is history.compare, timeout=TIMEOUT)
    older, newer = history.compare.details
    assert (older.capture.id, newer.capture.id) == (white, single)
    assert "apart" in history.compare.summary.text()
    qtbot.keyClick(window, Qt.Key.Key_Escape)
    assert history.pages.currentIndex() == 0
