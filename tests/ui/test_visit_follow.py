"""A visit left open too long is closed when the next capture is saved; the window follows
the capture to the patient's new visit instead of still naming the closed one."""

from __future__ import annotations

import datetime as dt

from PySide6.QtCore import Qt
from sqlalchemy import update

from skinstation.core.i18n import text
from skinstation.storage.models import Visit
from tests.ui.helpers import TIMEOUT, log_in, open_visit, wait_for_preview


def test_the_window_follows_a_capture_into_the_new_visit(qtbot, make_window, station):
    window = make_window(station)
    log_in(qtbot, window, "nurse")
    open_visit(qtbot, window, "P-STALE")
    old = window.ctx.visit.visit
    assert old.number == 1
    service = window.ctx.require_service()
    with service.database.transaction() as session:  # opened yesterday, never closed
        session.execute(update(Visit).where(Visit.id == old.id).values(
            opened_at=dt.datetime.now(dt.UTC) - dt.timedelta(hours=13)))
    window.show_screen("capture")
    wait_for_preview(qtbot, window)
    capture, result = window.capture_screen, window.result_screen
    qtbot.waitUntil(capture.capture_button.isEnabled, timeout=TIMEOUT)
    qtbot.mouseClick(capture.capture_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: result.outcome is not None, timeout=TIMEOUT)
    qtbot.mouseClick(result.save_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: window.ctx.visit.visit.id != old.id, timeout=TIMEOUT)
    new = window.ctx.visit.visit
    assert (new.number, new.closed_at, new.patient_id) == (2, None, old.patient_id)
    assert window.context_label.text() == text("ui.header.visit").format(
        pseudonym="P-STALE", visit=2)
