"""The capture screen's simulated dermatoscope holds one lesion: "Next lesion" (shown only for
the simulator) and a new visit move it on; reopening the preview keeps it."""

from __future__ import annotations

import dataclasses

from PySide6.QtCore import Qt

from skinstation.core.i18n import text
from tests.ui.helpers import TIMEOUT, log_in, open_visit, wait_for_preview


def _show_capture(qtbot, window):
    window.show_screen("capture")
    wait_for_preview(qtbot, window)
    return window.capture_screen


def test_next_lesion_button_and_a_new_visit_move_the_simulated_scope(
        qtbot, make_window, station):
    window = make_window(station)
    camera = window.ctx.camera
    log_in(qtbot, window, "nurse")
    open_visit(qtbot, window, "P-LESION-1")
    capture = _show_capture(qtbot, window)
    assert capture.source.kind == "simulator" and capture.source.can_change_lesion
    button = capture.next_lesion_button
    assert button.isVisible() and button.isEnabled()
    assert button.text() == text("ui.capture.next_lesion")
    assert camera.lesion == "ISIC_0024307.jpg" == capture.source.lesion  # the visit moved it

    window.show_screen("patient")  # the camera is released and reopened: same lesion
    capture = _show_capture(qtbot, window)
    assert camera.lesion == "ISIC_0024307.jpg"

    window.show_screen("patient")
    patient = window.screens["patient"]
    qtbot.mouseClick(patient.close_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: window.ctx.visit is None, timeout=TIMEOUT)
    assert camera.lesion == "ISIC_0024307.jpg"  # closing a visit moves nothing
    open_visit(qtbot, window, "P-LESION-2")  # a new patient: the scope moves on
    capture = _show_capture(qtbot, window)
    assert camera.lesion == "ISIC_0024308.jpg"

    qtbot.mouseClick(capture.next_lesion_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: camera.lesion == "ISIC_0024309.jpg", timeout=TIMEOUT)
    qtbot.waitUntil(lambda: capture.capture_button.isEnabled(), timeout=TIMEOUT)
    result = window.result_screen
    qtbot.mouseClick(capture.capture_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: result.taken is not None, timeout=TIMEOUT)
    assert result.taken.frame.label == "ISIC_0024309.jpg"  # the frames switched lesion
    assert result.taken.frame.source_kind == "simulator"


def test_no_next_lesion_button_without_the_simulated_scope(qtbot, make_window, station):
    camera = dataclasses.replace(station.camera, source="synthetic", simulator_folder="")
    window = make_window(station.replace(camera=camera, data_dir=None))
    log_in(qtbot, window, "nurse")
    open_visit(qtbot, window, "P-NO-LESION")
    capture = _show_capture(qtbot, window)
    assert capture.source.kind == "synthetic" and not capture.source.can_change_lesion
    assert not capture.next_lesion_button.isVisible()
    assert window.ctx.camera.lesion == ""
