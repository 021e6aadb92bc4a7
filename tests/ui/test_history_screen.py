"""History screen: suspected cancers highlighted, a sequence is one line, per-patient visit
numbers, the band's name and the note on every line (issue 19, point 14)."""

from __future__ import annotations

import datetime as dt

import numpy as np
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QLabel

from skinstation.camera import BANDS
from skinstation.services.models import ModelManager
from skinstation.services.station import StationService
from skinstation.settings import Settings
from skinstation.ui.screens.history import COLUMNS
from tests.ui.helpers import PASSWORD, TIMEOUT, log_in, open_visit

PROBS = {"akiec": 0.05, "bcc": 0.1, "bkl": 0.05, "df": 0.05, "mel": 0.5, "nv": 0.2, "vasc": 0.05}
GROUPS = {"skin_cancer": 0.6, "other_disease": 0.1, "benign": 0.3}
LEGEND = ("⚠ Highlighted lines: suspected skin cancer or safety referral — a dermatologist "
          "should see these.")


class Seeder:
    """Stores patients, visits and captures straight through the station's service."""

    def __init__(self, station: Settings, models: ModelManager) -> None:
        self.service = StationService(station, models=models)
        self.session = self.service.login("nurse", PASSWORD)
        self.store = self.service.store
        self.minute = 0

    def visit(self, pseudonym: str) -> int:
        patient = self.service.find_or_create_patient(self.session, pseudonym)
        return self.service.start_visit(self.session, patient.id).id

    def capture(self, visit_id: int, decision: str | None = None, referral: bool = False,
                band: str = "white", group: str | None = None, index: int | None = None,
                note: str | None = None) -> int:
        self.minute += 1
        when = dt.datetime.now(dt.UTC) - dt.timedelta(hours=1) + dt.timedelta(minutes=self.minute)
        pixels = np.random.default_rng(self.minute).integers(0, 256, (24, 32, 3), dtype=np.uint8)
        capture = self.store.save_capture(
            visit_id, pixels, band=band, body_site="back", device_id="cam-1",
            operator_id=self.session.operator_id, access_time=when, capture_time=when,
            multispectral_group_id=group, multispectral_index=index)
        if decision is not None:
            self.store.save_prediction(capture.id, model_version="m-1",
                                       class_probabilities=PROBS, group_probabilities=GROUPS,
                                       decision=decision, referral=referral)
        if note is not None:
            self.store.add_operator_label(capture.id, None, author_id=self.session.operator_id,
                                          note=note)
        return capture.id

    def close(self) -> None:
        self.service.logout(self.session)
        self.service.database.dispose()


def _history(qtbot, window, pseudonym: str, rows: int):
    window.show_screen("history")
    history = window.screens["history"]
    history.patient_filter.setText(pseudonym)
    qtbot.mouseClick(history.search_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: len(history.rows) == rows, timeout=TIMEOUT)
    return history


def _line(history, capture_id: int) -> int:
    return next(row for row, (_entry, summary) in enumerate(history.lines)
                if summary.capture_id == capture_id)


def _text(history, row: int, column: str) -> str:
    return history.table.item(row, COLUMNS.index(column)).text()


def test_suspected_cancer_and_referral_lines_are_highlighted_with_a_symbol(
        qtbot, make_window, station, shared_models):
    seed = Seeder(station, shared_models)
    visit = seed.visit("P-HL")
    cancer = seed.capture(visit, "skin_cancer", referral=True)
    referral = seed.capture(visit, "benign", referral=True)
    benign = seed.capture(visit, "benign")
    seed.close()
    window = make_window(station)
    log_in(qtbot, window, "nurse")
    history = _history(qtbot, window, "P-HL", 3)

    assert history.findChild(QLabel, "historyLegend").text() == LEGEND
    for capture_id in (cancer, referral):
        row = _line(history, capture_id)
        thumb = history.table.item(row, 0)
        assert thumb.text() == f"⚠ #{capture_id}"  # a symbol, not colour alone
        for column in range(len(COLUMNS)):
            item = history.table.item(row, column)
            assert item.background().style() == Qt.BrushStyle.SolidPattern  # coloured
            assert LEGEND in item.toolTip()
        assert history.table.item(row, COLUMNS.index("decision")).font().bold()
    assert _text(history, _line(history, cancer), "decision") == (
        "▲ Suspected skin cancer · ▲ safety referral")
    row = _line(history, benign)
    assert history.table.item(row, 0).text() == f"#{benign}"
    assert history.table.item(row, 0).background().style() == Qt.BrushStyle.NoBrush
    assert history.table.item(row, 0).toolTip() == ""


def test_a_seven_frame_sequence_is_one_line_that_opens_to_every_frame(
        qtbot, make_window, station, shared_models):
    seed = Seeder(station, shared_models)
    visit = seed.visit("P-SEQ")
    bands = list(BANDS)
    assert len(bands) == 7 and bands[0] == "white"
    frames = [seed.capture(visit, "skin_cancer" if band == "white" else None, band=band,
                           group="seq-1", index=index) for index, band in enumerate(bands)]
    seed.close()
    window = make_window(station)
    log_in(qtbot, window, "nurse")
    history = _history(qtbot, window, "P-SEQ", 7)

    white = frames[0]
    assert history.table.rowCount() == 1
    assert history.count.text() == "1 captures"
    assert history.table.item(0, 0).data(Qt.ItemDataRole.UserRole) == white
    assert history.table.item(0, 0).text() == f"▸ ⚠ #{white}"
    assert _text(history, 0, "band") == "White + 6 bands"
    assert history.table.item(0, COLUMNS.index("band")).toolTip().splitlines() == [
        "Cross-polarised, UV 365 nm, Violet 405 nm, Amber 590 nm, Red 660 nm, Near-IR 850 nm",
        LEGEND]
    assert _text(history, 0, "decision") == "▲ Suspected skin cancer"
    qtbot.waitUntil(lambda: white in history.thumbs, timeout=TIMEOUT)
    assert not history.table.item(0, 0).icon().isNull()

    assert not history.frames_button.isEnabled()
    history.select_ids([white])
    assert history.frames_button.isEnabled() and history.frames_button.text() == (
        "Show all frames")
    qtbot.mouseClick(history.frames_button, Qt.MouseButton.LeftButton)
    assert history.table.rowCount() == 7
    assert [s.capture_id for _e, s in history.lines] == frames
    assert [_text(history, row, "band") for row in range(7)] == [
        "White + 6 bands", "Cross-polarised", "UV 365 nm", "Violet 405 nm", "Amber 590 nm",
        "Red 660 nm", "Near-IR 850 nm"]
    assert history.table.item(0, 0).text() == f"▾ ⚠ #{white}"
    assert history.table.item(2, 0).text() == f"    ↳ #{frames[2]}"
    assert _text(history, 2, "decision") == "— not classified"
    assert history.frames_button.text() == "Hide frames"
    qtbot.waitUntil(lambda: frames[6] in history.thumbs, timeout=TIMEOUT)
    # a frame opens on its own
    history.select_ids([frames[3]])
    qtbot.mouseClick(history.open_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: history.pages.currentWidget() is history.detail, timeout=TIMEOUT)
    assert history.detail.detail.capture.id == frames[3]
    history.show_list()
    history.select_ids([white])
    qtbot.mouseClick(history.frames_button, Qt.MouseButton.LeftButton)
    assert history.table.rowCount() == 1


def test_visit_numbers_are_per_patient_and_every_line_shows_its_band_and_note(
        qtbot, make_window, station, shared_models):
    seed = Seeder(station, shared_models)
    for _ in range(3):
        seed.capture(seed.visit("P-OLD"), "benign")
    newcomer = seed.capture(seed.visit("P-NEW"), "benign", band="uv_365", note="itchy, 2 weeks")
    seed.close()
    window = make_window(station)
    log_in(qtbot, window, "nurse")

    history = _history(qtbot, window, "P-NEW", 1)
    assert history.rows[0].capture_id == newcomer and history.rows[0].visit_id == 4
    assert _text(history, 0, "visit") == "1"  # not "visit 4"
    assert _text(history, 0, "band") == "UV 365 nm"
    assert _text(history, 0, "note") == "itchy, 2 weeks"
    history = _history(qtbot, window, "P-OLD", 3)
    assert [_text(history, row, "visit") for row in range(3)] == ["3", "2", "1"]
    assert [_text(history, row, "band") for row in range(3)] == ["White"] * 3
    assert [_text(history, row, "note") for row in range(3)] == ["—"] * 3

    # the patient screen numbers the visit it opens the same way (the open one is closed)
    open_visit(qtbot, window, "P-NEW")
    status = window.screens["patient"].patient_status.text()
    assert status == "Patient P-NEW — visit 2 open."
