"""Lesion follow-up through the real window (issue 20): two lesions placed on the body map, each
captured on two dates, their timelines in date order, the measured change of a pair, the
lesion's report PDF read back — and the patient list with its demographics."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from pypdf import PdfReader
from PySide6.QtCore import Qt
from sqlalchemy import select

from skinstation.core.i18n import text
from skinstation.services.lesion_compare import compare_captures
from skinstation.services.report import local_time
from skinstation.storage.models import Capture, Visit
from skinstation.ui.widgets.history_lines import decision_words
from tests.ui.helpers import TIMEOUT, log_in, open_visit, wait_for_preview

PSEUDONYM = "P-FOLLOW"
AGE = dt.timedelta(days=60)


def _click_map(qtbot, window, view: str, x: float, y: float) -> None:
    body_map = window.screens["patient"].body_map
    qtbot.mouseClick(body_map, Qt.MouseButton.LeftButton,
                     pos=body_map.point_of(view, x, y).toPoint())


def _new_lesion(qtbot, window, view: str, x: float, y: float, site: str) -> int:
    """Nurse: click the body map, then "New lesion"; returns the visit's chosen lesion."""
    patient = window.screens["patient"]
    _click_map(qtbot, window, view, x, y)
    assert window.ctx.visit.body_site == site
    assert window.ctx.visit.lesion_id is None
    qtbot.mouseClick(patient.lesion_picker.new_lesion_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: window.ctx.visit.lesion_id is not None, timeout=TIMEOUT)
    return window.ctx.visit.lesion_id


def _capture_and_save(qtbot, window) -> int:
    capture, result = window.capture_screen, window.result_screen
    window.show_screen("capture")
    wait_for_preview(qtbot, window)
    qtbot.waitUntil(capture.capture_button.isEnabled, timeout=TIMEOUT)
    previous = result.taken
    qtbot.mouseClick(capture.capture_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: result.taken is not previous and result.outcome is not None,
                    timeout=TIMEOUT)
    qtbot.mouseClick(result.save_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: bool(result.saved_ids) or result.message.kind == "error",
                    timeout=TIMEOUT)
    assert result.message.kind == "success", result.message.message
    (capture_id,) = result.saved_ids
    return capture_id


def _age_visit(window, visit_id: int) -> None:
    """The first visit (and its captures) took place ``AGE`` ago."""
    with window.ctx.require_service().database.transaction() as db:
        visit = db.get(Visit, visit_id)
        visit.opened_at = visit.opened_at - AGE
        for capture in db.scalars(select(Capture).where(Capture.visit_id == visit_id)):
            capture.capture_time = capture.capture_time - AGE


def _texts(table, column: int) -> list[str]:
    return [table.item(row, column).text() for row in range(table.rowCount())]


def test_two_lesions_followed_over_two_visits(qtbot, make_window, station) -> None:
    window = make_window(station)
    log_in(qtbot, window, "nurse")
    patient = window.screens["patient"]
    picker = patient.lesion_picker

    # first visit: two new lesions on the body map, one capture each
    open_visit(qtbot, window, PSEUDONYM, site="back")
    first_visit = window.ctx.visit.visit.id
    back = _new_lesion(qtbot, window, "back", 0.42, 0.3, "back")
    assert picker.lesion_choice.currentText() == "Lesion 1 · Back, left"
    back_1 = _capture_and_save(qtbot, window)
    window.show_screen("patient")
    chest = _new_lesion(qtbot, window, "front", 0.42, 0.25, "chest")
    assert picker.lesion_choice.currentText() == "Lesion 2 · Chest, right"
    assert [dot.number for dot in patient.body_map.lesions] == [1, 2]
    chest_1 = _capture_and_save(qtbot, window)

    # two months later: a new visit; "which lesion?" offers the lesion at the site
    _age_visit(window, first_visit)
    window.show_screen("patient")
    qtbot.mouseClick(patient.close_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: window.ctx.visit is None, timeout=TIMEOUT)
    open_visit(qtbot, window, PSEUDONYM, site="back")
    qtbot.waitUntil(lambda: len(picker.lesions) == 2, timeout=TIMEOUT)
    choice = picker.lesion_choice
    assert [choice.itemText(i) for i in range(choice.count())] == [
        "No lesion chosen", "Lesion 1 · Back, left"]
    choice.setCurrentIndex(choice.findData(back))
    assert window.ctx.visit.lesion_id == back
    back_2 = _capture_and_save(qtbot, window)
    window.show_screen("patient")
    body_map = patient.body_map  # the chest lesion's dot chooses it and its site
    qtbot.mouseClick(body_map, Qt.MouseButton.LeftButton,
                     pos=body_map.lesion_point(chest).toPoint())
    assert (window.ctx.visit.body_site, window.ctx.visit.lesion_id) == ("chest", chest)
    chest_2 = _capture_and_save(qtbot, window)

    # the timelines: each lesion's captures, oldest first, with their decisions
    window.show_screen("lesions")
    timeline = window.screens["lesions"]
    qtbot.waitUntil(lambda: [c.capture_id for c in timeline.timeline] == [chest_1, chest_2],
                    timeout=TIMEOUT)
    timeline.select_lesion(back)
    qtbot.waitUntil(lambda: [c.capture_id for c in timeline.timeline] == [back_1, back_2],
                    timeout=TIMEOUT)
    rows = timeline.timeline
    assert rows[0].capture_time < rows[1].capture_time - dt.timedelta(days=59)
    assert _texts(timeline.table, 0) == [local_time(row.capture_time) for row in rows]
    assert _texts(timeline.table, 1) == ["1", "2"]
    assert _texts(timeline.table, 2) == [decision_words(window.ctx.tr, row.decision,
                                                        row.referral) for row in rows]

    # the comparison: the numbers the service measures
    assert not timeline.compare_button.isEnabled()
    timeline.table.selectRow(0)
    timeline.table.selectRow(1)
    assert timeline.selected_ids() == [back_1, back_2]
    qtbot.mouseClick(timeline.compare_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: timeline.comparison is not None, timeout=TIMEOUT * 3)
    service, session = window.ctx.require_service(), window.ctx.require_session()
    expected = compare_captures(service, session, back_2, back_1)
    assert (expected.before_id, expected.after_id) == (back_1, back_2)
    shown = [[timeline.measures.item(r, c).text() for c in range(4)] for r in range(3)]
    assert shown == [[text(row.label_key, "en"), row.before, row.after,
                      f"▲ {row.change}" if row.changed else row.change]
                     for row in expected.rows()]
    assert shown[0][1] == str(expected.before_measure.area_px)
    assert shown[0][2] == str(expected.after_measure.area_px)
    flagged = [text(f"ui.lesions.measure.{key}", "en") for key in expected.change.flags
               if key != "asymmetry"]
    assert timeline.change_summary.text() == (
        f"▲ Changed: {', '.join(flagged)}" if flagged
        else "No measured change above the thresholds.")
    # no field of view set: sizes in pixels, and the line says how to measure in mm
    assert expected.units == "px" and not timeline.units_note.isHidden()
    assert timeline.units_note.text() == ("Sizes in pixels: set the dermatoscope's field of "
                                          "view in Settings to measure in mm.")
    assert not timeline.side_view.image.isNull() and not timeline.overlay_view.image.isNull()
    before_overlay = timeline.overlay_view.image.copy()
    timeline.opacity.setValue(90)
    assert timeline.overlay_view.image != before_overlay

    # the chest lesion's report: written, and it says the decision and the site
    timeline.select_lesion(chest)
    qtbot.waitUntil(lambda: [c.capture_id for c in timeline.timeline] == [chest_1, chest_2],
                    timeout=TIMEOUT)
    qtbot.mouseClick(timeline.report_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: timeline.report_path is not None
                    or timeline.message.kind == "error", timeout=TIMEOUT)
    path = Path(timeline.report_path)
    assert timeline.message.message == f"Report written to {path}"
    assert path.is_file() and path.parent == Path(station.home) / "reports"
    pdf = "\n".join(page.extract_text() for page in PdfReader(str(path)).pages)
    newest = next(row for row in reversed(timeline.timeline) if row.decision is not None)
    assert text(f"decision.{newest.decision}", "en") in pdf
    assert "Chest" in pdf


def test_the_patient_list_finds_opens_and_records_demographics(qtbot, make_window,
                                                                station) -> None:
    window = make_window(station)
    log_in(qtbot, window, "nurse")
    open_visit(qtbot, window, "P-LIST-1", site="back")
    _new_lesion(qtbot, window, "back", 0.6, 0.3, "back")
    window.show_screen("patient")
    qtbot.mouseClick(window.screens["patient"].close_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: window.ctx.visit is None, timeout=TIMEOUT)
    open_visit(qtbot, window, "P-LIST-2", site="face")
    qtbot.mouseClick(window.screens["patient"].close_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: window.ctx.visit is None, timeout=TIMEOUT)

    qtbot.mouseClick(window.screens["patient"].patients_button, Qt.MouseButton.LeftButton)
    listing = window.screens["patients"]
    assert window.stack.currentWidget() is listing
    qtbot.waitUntil(lambda: listing.table.rowCount() == 2, timeout=TIMEOUT)
    qtbot.keyClicks(listing.search, "list-1")
    qtbot.waitUntil(lambda: _texts(listing.table, 0) == ["P-LIST-1"], timeout=TIMEOUT)
    assert _texts(listing.table, 3) == ["1"] and _texts(listing.table, 2) == ["0"]
    assert _texts(listing.table, 4) == ["—"]

    listing.table.selectRow(0)
    listing.sex.setCurrentIndex(listing.sex.findData("female"))
    listing.birth_year.setValue(1961)
    listing.fitzpatrick.setCurrentIndex(listing.fitzpatrick.findData(3))
    qtbot.mouseClick(listing.save_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: listing.message.kind == "success", timeout=TIMEOUT)
    qtbot.waitUntil(lambda: _texts(listing.table, 4) == ["Female"], timeout=TIMEOUT)
    assert _texts(listing.table, 5) == ["1961"] and _texts(listing.table, 6) == ["III"]

    listing.table.selectRow(0)
    qtbot.mouseClick(listing.open_button, Qt.MouseButton.LeftButton)
    patient = window.screens["patient"]
    qtbot.waitUntil(lambda: patient.patient is not None, timeout=TIMEOUT)
    assert window.stack.currentWidget() is patient
    assert patient.patient.pseudonym == "P-LIST-1"
    assert patient.patient_status.text() == (
        "Found existing patient P-LIST-1 — start a visit to capture.")
