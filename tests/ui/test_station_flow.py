"""The whole station path through real widgets: first-run admin → login → new patient →
capture from the simulated dermatoscope → the model's result for that real image → save →
history → dermatologist review → review stored."""

from __future__ import annotations

import datetime as dt

import pytest
from PySide6.QtCore import Qt

from skinstation.auth import Role
from skinstation.core.i18n import text
from skinstation.storage import ReviewState
from tests.ui.helpers import (
    PASSWORD,
    TIMEOUT,
    create_account,
    create_first_admin,
    log_in,
    open_visit,
    wait_for_preview,
)


@pytest.mark.slow
def test_full_station_path(qtbot, make_window, ui_settings):
    window = make_window(ui_settings)
    service_ready = window.ctx.service
    assert service_ready is not None

    # -- first run: the administrator is created, then adds the clinical accounts
    login = window.login
    create_first_admin(qtbot, window)
    assert window.ctx.session.role is Role.ADMIN
    assert window.current_screen is window.screens["settings"]
    create_account(qtbot, window, "nurse", "Nurse Kim", Role.STAFF)
    create_account(qtbot, window, "derm", "Dr Lee", Role.DERMATOLOGIST)
    qtbot.mouseClick(window.logout_button, Qt.MouseButton.LeftButton)
    assert window.ctx.session is None and window.current_screen is window.login
    assert not login.first_run

    # -- staff: new patient, visit, body site
    log_in(qtbot, window, "nurse")
    assert window.current_screen is window.screens["patient"]
    open_visit(qtbot, window, "P-UI-0001", site="back")
    qtbot.mouseClick(window.screens["patient"].capture_button, Qt.MouseButton.LeftButton)

    # -- capture from the simulated dermatoscope with the space bar
    capture = window.capture_screen
    assert window.current_screen is capture
    wait_for_preview(qtbot, window)
    assert capture.source.kind == "simulator"
    assert "SIMULATED DERMATOSCOPE" in capture.source_status.text()
    qtbot.waitUntil(lambda: capture.quality is not None, timeout=TIMEOUT)
    assert capture.capture_button.isEnabled()
    window.activateWindow()
    capture.capture_button.setFocus()
    qtbot.keyClick(capture.capture_button, Qt.Key.Key_Space)
    result = window.result_screen
    qtbot.waitUntil(lambda: result.outcome is not None, timeout=TIMEOUT)
    assert window.current_screen is result
    if result.outcome.prediction is None:  # quality failed: the operator classifies anyway
        assert result.classify_anyway.isVisible()
        taken = result.taken
        qtbot.mouseClick(result.classify_anyway, Qt.MouseButton.LeftButton)
        qtbot.waitUntil(lambda: result.outcome.prediction is not None, timeout=TIMEOUT)
        assert result.taken is taken

    # -- the result is the model's decision for that real image
    frame = result.taken.frame
    assert frame.source_kind == "simulator" and frame.label.startswith("ISIC_")
    expected = service_ready.classify(frame.pixels)
    shown = result.outcome.prediction
    assert shown.decision == expected.decision
    assert shown.class_probs == pytest.approx(expected.class_probs, abs=1e-6)
    banner = result.panel.banner
    if expected.decision == "not_assessable":
        assert banner.title.text() == text("ui.result.not_assessable")
        assert not result.panel.groups.isVisible()
    else:
        assert banner.title.text() == text(f"decision.{expected.decision}")
        assert banner.decision == expected.decision
        bars = result.panel.groups.values()
        for group, probability in expected.group_probs.items():
            assert bars[text(f"group.{group}")] == pytest.approx(probability)
        assert len(result.panel.classes.values()) == 7
        assert result.panel.guidance.text() == expected.guidance()
        assert banner.referral.isVisibleTo(banner) == expected.referral
    assert result.panel.notice.text() == text("notice")
    # the heatmap overlay (Grad-CAM, computed in the model thread) on request
    if expected.assessable:
        qtbot.mouseClick(result.heatmap_button, Qt.MouseButton.LeftButton)
        qtbot.waitUntil(lambda: result.explanation is not None, timeout=TIMEOUT)
        assert result.image.image.width() == result.heatmap_image().shape[1]
        qtbot.mouseClick(result.heatmap_button, Qt.MouseButton.LeftButton)
        assert result.image.image.width() == frame.width
    else:
        assert not result.heatmap_button.isEnabled()
    assert result.timings and result.timings[-1] < 10

    # -- operator's label and note, save
    result.label_combo.setCurrentIndex(result.label_combo.findData("nv"))
    qtbot.keyClicks(result.note, "flat brown macule")
    qtbot.mouseClick(result.save_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: bool(result.saved_ids) or result.message.kind == "error",
                    timeout=TIMEOUT)
    assert result.message.kind == "success", result.message.message
    (capture_id,) = result.saved_ids
    assert not result.save_button.isEnabled()  # no double save

    # -- history lists it, with a thumbnail; it opens
    window.show_screen("history")
    history = window.screens["history"]
    qtbot.waitUntil(lambda: any(r.capture_id == capture_id for r in history.rows),
                    timeout=TIMEOUT)
    qtbot.waitUntil(lambda: capture_id in history.thumbs, timeout=TIMEOUT)
    row = history.rows[0]
    assert row.decision == expected.decision and row.original_label == "nv"
    assert row.review_state == ReviewState.UNREVIEWED
    assert history.table.item(0, 2).text() == "P-UI-0001"
    history.select_ids([capture_id])
    qtbot.mouseClick(history.open_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: history.pages.currentWidget() is history.detail, timeout=TIMEOUT)
    assert "Nurse Kim" in history.detail.labels.text()
    assert "flat brown macule" in history.detail.labels.text()
    qtbot.mouseClick(window.logout_button, Qt.MouseButton.LeftButton)

    # -- the dermatologist reviews it from the queue
    log_in(qtbot, window, "derm")
    assert "review" in window.visible_screens()
    window.show_screen("review")
    review = window.screens["review"]
    qtbot.waitUntil(lambda: review.current is not None, timeout=TIMEOUT)
    assert review.current.capture.id == capture_id
    # nothing proposed: the dermatologist agrees or corrects explicitly (issue 19 point 9)
    assert review.diagnosis.currentData() is None and not review.submit.isEnabled()
    review.diagnosis.setCurrentIndex(review.diagnosis.findData("mel"))
    qtbot.keyClicks(review.note, "irregular network on review")
    before = dt.datetime.now(dt.UTC)
    qtbot.mouseClick(review.submit, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: review.message.kind in ("success", "error"), timeout=TIMEOUT)
    assert review.message.kind == "success", review.message.message
    assert "Dr Lee" in review.message.message
    qtbot.waitUntil(lambda: not review.queue or all(s.capture_id != capture_id
                                                    for s in review.queue), timeout=TIMEOUT)

    # -- the review is stored as the final label, with its author and time
    derm = service_ready.login("derm", PASSWORD)
    detail = service_ready.capture_detail(derm, capture_id)
    final = detail.labels.final
    assert final.code == "mel" and final.note == "irregular network on review"
    assert final.author_id == derm.operator_id
    assert before - dt.timedelta(seconds=5) <= final.created_at <= dt.datetime.now(dt.UTC)
    assert detail.labels.original.code == "nv"
