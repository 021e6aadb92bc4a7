"""A capture in a band other than white light is stored with its band but not classified, and
the result screen shows the band and says why (issue 19, point 6) — real window, real station
database, real model, simulated dermatoscope with its simulated LED controller."""

from __future__ import annotations

from PySide6.QtCore import Qt
from sqlalchemy import select

from skinstation.core.i18n import text
from skinstation.storage import Capture
from skinstation.storage.models import Prediction
from tests.ui.helpers import (
    TIMEOUT,
    log_in,
    open_visit,
    save_result,
    take_capture,
    wait_for_preview,
)


def stored(window):
    with window.ctx.require_service().database.transaction() as db:
        captures = [(r.id, r.band) for r in db.scalars(select(Capture).order_by(Capture.id))]
        predictions = [r.capture_id for r in db.scalars(select(Prediction))]
    return captures, predictions


def test_a_uv_still_is_stored_with_its_band_but_not_classified(qtbot, make_window, station):
    window = make_window(station)
    log_in(qtbot, window, "nurse")
    open_visit(qtbot, window, "P-UV", site="back")
    window.show_screen("capture")
    capture = window.capture_screen
    wait_for_preview(qtbot, window)
    qtbot.mouseClick(capture.band_buttons["uv_365"], Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: capture.current_band == "uv_365", timeout=TIMEOUT)
    wait_for_preview(qtbot, window)

    result = take_capture(qtbot, window, capture.capture_button)
    assert result.taken.band == "uv_365"
    assert result.outcome.prediction is None and result.outcome.not_classified == "band"
    assert result.band_label.text() == "Light: UV 365 nm"
    assert result.panel.banner.title.text() == "Not classified: UV 365 nm light"
    assert result.panel.guidance.text() == (
        "The model was trained on white-light dermoscopy images only, so a UV 365 nm capture "
        "is not classified. It is saved with its band; take a white-light capture for a "
        "triage result.")
    assert not result.panel.groups.isVisible() and not result.heatmap_button.isEnabled()
    assert not result.classify_anyway.isVisible()  # no "classify anyway" for a UV frame
    assert result.quality.text() == ""  # not "image quality is good" (or too low) for UV

    # in Korean too
    window.ctx.set_language("ko")
    assert result.band_label.text() == "조명: 자외선 365 nm"
    assert result.panel.banner.title.text() == "분류되지 않음: 자외선 365 nm 조명"
    assert result.panel.guidance.text() == text("ui.result.not_classified_band_help",
                                                "ko").format(band="자외선 365 nm")
    window.ctx.set_language("en")
    assert result.panel.banner.title.text() == "Not classified: UV 365 nm light"

    (capture_id,) = save_result(qtbot, result)
    assert stored(window) == ([(capture_id, "uv_365")], [])
    assert result.message.message == f"Saved: capture #{capture_id}."


def test_a_sequence_is_classified_on_its_white_frame_and_says_so(qtbot, make_window, station):
    window = make_window(station)
    log_in(qtbot, window, "nurse")
    open_visit(qtbot, window, "P-UV-SEQ", site="face")
    window.show_screen("capture")
    capture = window.capture_screen
    wait_for_preview(qtbot, window)
    qtbot.mouseClick(capture.band_buttons["uv_365"], Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: capture.current_band == "uv_365", timeout=TIMEOUT)

    result = take_capture(qtbot, window, capture.sequence_button)
    assert result.taken.band == "white" and len(result.taken.sequence) == 7
    assert result.band_label.text() == (
        "Light: multispectral sequence (7 bands); only the White frame is classified.")
    force = result.outcome.prediction is None and result.classify_anyway.isVisible()
    if force:  # a poor frame: classify the white one anyway
        shown = result.outcome
        qtbot.mouseClick(result.classify_anyway, Qt.MouseButton.LeftButton)
        qtbot.waitUntil(lambda: result.outcome is not shown, timeout=TIMEOUT)
    assert result.outcome.band == "white" and result.outcome.prediction is not None
    ids = save_result(qtbot, result)
    captures, predictions = stored(window)
    bands = dict(captures)
    assert sorted(bands[i] for i in ids) == sorted(station.camera.bands)
    assert [bands[i] for i in predictions] == ["white"]
