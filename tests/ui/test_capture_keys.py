"""Capture screen keys and unsaved results (issue 19, points 1 and 3).

The space bar and the foot pedal (F12) capture whenever the capture screen is the current one,
whichever widget has the focus after the navigation that led there; when a capture cannot be
taken they say why; a result not saved yet is never replaced without asking.
"""

from __future__ import annotations

import sqlite3
import threading

import pytest
from PySide6.QtCore import Qt, QTimer
from PySide6.QtWidgets import QApplication, QMessageBox, QPushButton

from skinstation.camera import SimulatedCable, SimulatedDermatoscope
from skinstation.core.i18n import text
from skinstation.ui.main_window import MainWindow
from tests.ui.helpers import TIMEOUT, log_in, open_visit, wait_for_preview

KEYS = [pytest.param(Qt.Key.Key_Space, id="space"), pytest.param(Qt.Key.Key_F12, id="pedal")]


def saved_captures(window: MainWindow) -> int:
    """Rows in the station database's captures table (read on a separate connection)."""
    path = window.ctx.settings.home / "station.db"
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as db:
        return int(db.execute("SELECT COUNT(*) FROM captures").fetchone()[0])


def press(qtbot, window: MainWindow, key: Qt.Key,
          modifier: Qt.KeyboardModifier = Qt.KeyboardModifier.NoModifier) -> None:
    """Press ``key`` like a keyboard would: into whichever widget has the focus now."""
    window.activateWindow()
    qtbot.waitUntil(window.isActiveWindow, timeout=TIMEOUT)
    qtbot.keyClick(QApplication.focusWidget() or window, key, modifier)


def capture_with_key(qtbot, window: MainWindow, key: Qt.Key) -> None:
    """On the capture screen: wait for the live picture, press ``key``, wait for the result."""
    capture, result = window.capture_screen, window.result_screen
    assert window.current_screen is capture
    wait_for_preview(qtbot, window)
    previous = result.taken
    press(qtbot, window, key)
    qtbot.waitUntil(lambda: result.taken is not previous and result.outcome is not None,
                    timeout=TIMEOUT)
    assert window.current_screen is result


def save_result(qtbot, window: MainWindow) -> None:
    result = window.result_screen
    qtbot.mouseClick(result.save_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: bool(result.saved_ids), timeout=TIMEOUT)


def go_to_capture(qtbot, window: MainWindow, way: str) -> None:
    """Reach the capture screen the way an operator would (the focus lands where it lands)."""
    if way == "go_to_capture":
        qtbot.mouseClick(window.nav_buttons["patient"], Qt.MouseButton.LeftButton)
        patient = window.screens["patient"]
        assert window.current_screen is patient and patient.capture_button.isVisible()
        qtbot.mouseClick(patient.capture_button, Qt.MouseButton.LeftButton)
    elif way == "retake":
        qtbot.mouseClick(window.result_screen.retake_button, Qt.MouseButton.LeftButton)
    elif way == "sidebar":
        qtbot.mouseClick(window.nav_buttons["capture"], Qt.MouseButton.LeftButton)
    else:
        press(qtbot, window, Qt.Key.Key_2, Qt.KeyboardModifier.ControlModifier)
    assert window.current_screen is window.capture_screen


@pytest.mark.parametrize("key", KEYS)
@pytest.mark.parametrize("way", ["go_to_capture", "retake", "sidebar", "ctrl_2"])
def test_keys_capture_right_after_each_way_to_the_capture_screen(qtbot, make_window, station,
                                                                 way, key):
    window = make_window(station)
    log_in(qtbot, window, "nurse")
    open_visit(qtbot, window, "P-KEYS")
    before = 0
    if way == "retake":  # a first capture, by the button, saved
        window.show_screen("capture")
        wait_for_preview(qtbot, window)
        qtbot.mouseClick(window.capture_screen.capture_button, Qt.MouseButton.LeftButton)
        qtbot.waitUntil(lambda: window.result_screen.outcome is not None, timeout=TIMEOUT)
        save_result(qtbot, window)
        before = 1
    assert saved_captures(window) == before
    go_to_capture(qtbot, window, way)
    capture_with_key(qtbot, window, key)
    assert window.result_screen.has_unsaved
    save_result(qtbot, window)
    assert saved_captures(window) == before + 1
    # and again, the same way, with the other key
    go_to_capture(qtbot, window, way)
    other = Qt.Key.Key_F12 if key == Qt.Key.Key_Space else Qt.Key.Key_Space
    capture_with_key(qtbot, window, other)
    save_result(qtbot, window)
    assert saved_captures(window) == before + 2


def test_keys_say_why_they_cannot_capture(qtbot, make_window, station, ham_dir):
    opened = threading.Event()
    cable = SimulatedCable()

    def slow_camera(camera):  # a dermatoscope that takes its time to open
        opened.wait(TIMEOUT / 1000)
        return SimulatedDermatoscope(ham_dir / "images", fps=30, size=(640, 480), cable=cable)

    window = make_window(station, source_factory=slow_camera)
    capture, result = window.capture_screen, window.result_screen
    try:
        log_in(qtbot, window, "nurse")
        press(qtbot, window, Qt.Key.Key_2, Qt.KeyboardModifier.ControlModifier)
        assert window.current_screen is capture
        press(qtbot, window, Qt.Key.Key_Space)  # no visit yet
        assert (capture.message.kind, capture.message.message) == (
            "warning", text("ui.capture.not_ready_visit"))
        assert capture.message.isVisible()

        open_visit(qtbot, window, "P-WHY")
        qtbot.mouseClick(window.screens["patient"].capture_button, Qt.MouseButton.LeftButton)
        assert capture.source is None  # still opening
        press(qtbot, window, Qt.Key.Key_F12)
        assert (capture.message.kind, capture.message.message) == (
            "warning", text("ui.capture.not_ready_camera"))
        assert capture.message.isVisible()
        assert window.current_screen is capture and result.taken is None
    finally:
        opened.set()
    wait_for_preview(qtbot, window)

    cable.unplug()  # the cable is pulled: the camera stops
    qtbot.waitUntil(lambda: bool(capture.camera_error), timeout=TIMEOUT)
    press(qtbot, window, Qt.Key.Key_Space)
    assert (capture.message.kind, capture.message.message) == (
        "error", text("ui.capture.not_ready_camera_error").format(detail=capture.camera_error))
    assert "disconnected" in capture.message.message
    assert window.current_screen is capture and result.taken is None
    assert saved_captures(window) == 0

    cable.plug_in()
    qtbot.mouseClick(capture.reconnect_button, Qt.MouseButton.LeftButton)
    capture_with_key(qtbot, window, Qt.Key.Key_Space)
    save_result(qtbot, window)
    assert saved_captures(window) == 1


def test_a_second_capture_asks_before_replacing_an_unsaved_result(qtbot, make_window, station):
    window = make_window(station)
    log_in(qtbot, window, "nurse")
    open_visit(qtbot, window, "P-UNSAVED")
    capture, result = window.capture_screen, window.result_screen
    answers: list[str] = []

    def answer(choice):
        def confirm():
            answers.append(choice)
            return choice
        capture.confirm_replace = confirm

    window.show_screen("capture")
    capture_with_key(qtbot, window, Qt.Key.Key_Space)
    first = result.taken
    assert result.has_unsaved and answers == []

    # cancel: nothing captured, the first result is still the one waiting to be saved
    qtbot.mouseClick(result.retake_button, Qt.MouseButton.LeftButton)
    wait_for_preview(qtbot, window)
    answer("cancel")
    press(qtbot, window, Qt.Key.Key_Space)
    qtbot.wait(300)
    assert answers == ["cancel"]
    assert window.current_screen is capture and not capture.busy
    assert result.taken is first and result.has_unsaved

    # save first: back to the result, which is kept and saved; no new capture
    answer("save")
    press(qtbot, window, Qt.Key.Key_F12)
    assert answers == ["cancel", "save"]
    assert window.current_screen is result and result.taken is first
    assert QApplication.focusWidget() is result.save_button
    save_result(qtbot, window)
    assert saved_captures(window) == 1

    # a saved result is replaced without a question
    qtbot.mouseClick(result.retake_button, Qt.MouseButton.LeftButton)
    capture_with_key(qtbot, window, Qt.Key.Key_Space)
    second = result.taken
    assert second is not first and answers == ["cancel", "save"]

    # discard: the unsaved second result is replaced by a third, which alone is saved
    qtbot.mouseClick(result.retake_button, Qt.MouseButton.LeftButton)
    answer("discard")
    capture_with_key(qtbot, window, Qt.Key.Key_Space)
    assert answers == ["cancel", "save", "discard"]
    assert result.taken is not second and result.taken is not first
    assert saved_captures(window) == 1
    save_result(qtbot, window)
    assert saved_captures(window) == 2


def answer_box_later(qtbot, button_name: str, seen: list[tuple[str, str, list[str]]]) -> None:
    """When the unsaved-result box opens, note its texts and click ``button_name``."""
    def click() -> None:
        box = QApplication.activeModalWidget()
        if not isinstance(box, QMessageBox):
            QTimer.singleShot(50, click)
            return
        buttons = box.findChildren(QPushButton)
        seen.append((box.windowTitle(), box.text(), sorted(b.text() for b in buttons)))
        target = box.findChild(QPushButton, button_name)
        assert target is not None, button_name
        qtbot.mouseClick(target, Qt.MouseButton.LeftButton)

    QTimer.singleShot(50, click)


@pytest.mark.parametrize(("button", "replaced", "saved"), [
    ("replaceCancel", False, 1), ("replaceDiscard", True, 1)])
def test_the_unsaved_result_box_offers_three_clear_choices(qtbot, make_window, station,
                                                           button, replaced, saved):
    window = make_window(station)
    log_in(qtbot, window, "nurse")
    open_visit(qtbot, window, "P-BOX")
    capture, result = window.capture_screen, window.result_screen
    window.show_screen("capture")
    capture_with_key(qtbot, window, Qt.Key.Key_Space)
    first = result.taken
    qtbot.mouseClick(result.retake_button, Qt.MouseButton.LeftButton)
    wait_for_preview(qtbot, window)
    seen: list[tuple[str, str, list[str]]] = []
    answer_box_later(qtbot, button, seen)
    press(qtbot, window, Qt.Key.Key_Space)
    qtbot.waitUntil(lambda: bool(seen), timeout=TIMEOUT)
    assert seen == [("Result not saved",
                     "The last result has not been saved yet. A new capture replaces it.",
                     ["Cancel", "Discard it and capture", "Save it first"])]
    if replaced:
        qtbot.waitUntil(lambda: result.taken is not first and result.outcome is not None,
                        timeout=TIMEOUT)
        assert window.current_screen is result
    else:
        qtbot.wait(300)
        assert window.current_screen is capture and result.taken is first
        window.show_screen("result")
    save_result(qtbot, window)
    assert saved_captures(window) == saved
    assert (result.taken is first) != replaced


def test_the_space_bar_is_a_plain_key_on_the_other_screens(qtbot, make_window, station):
    window = make_window(station)
    log_in(qtbot, window, "nurse")
    open_visit(qtbot, window, "P-SPACE")
    window.show_screen("capture")
    wait_for_preview(qtbot, window)
    qtbot.mouseClick(window.nav_buttons["patient"], Qt.MouseButton.LeftButton)
    patient = window.screens["patient"]
    window.activateWindow()
    qtbot.waitUntil(window.isActiveWindow, timeout=TIMEOUT)
    patient.pseudonym.setFocus()
    patient.pseudonym.clear()
    qtbot.keyClicks(patient.pseudonym, "P 7")
    qtbot.keyClick(patient.pseudonym, Qt.Key.Key_F12)
    qtbot.wait(300)
    assert patient.pseudonym.text() == "P 7"
    assert window.current_screen is patient
    assert window.result_screen.taken is None and not window.capture_screen.busy
