"""Saving from the result screen stores what the operator saw and says what was saved
(issue 19, points 2 and 7) — real window, real station database, real model, simulated camera."""

from __future__ import annotations

import dataclasses

import pytest
from PySide6.QtCore import Qt
from sqlalchemy import select

from skinstation.core.i18n import text
from skinstation.storage.models import Label, Operator, Prediction
from tests.ui.helpers import (
    TIMEOUT,
    log_in,
    open_visit,
    save_result,
    take_capture,
)


def label_rows(window):
    with window.ctx.require_service().database.transaction() as db:
        names = {o.id: o.username for o in db.scalars(select(Operator))}
        return [(r.capture_id, r.kind, r.code, r.note, names[r.author_id])
                for r in db.scalars(select(Label).order_by(Label.id))]


def prediction_rows(window):
    with window.ctx.require_service().database.transaction() as db:
        return [(r.capture_id, r.class_probabilities, r.group_probabilities, r.decision)
                for r in db.scalars(select(Prediction).order_by(Prediction.id))]


def test_a_note_without_a_diagnosis_is_stored_and_named(qtbot, make_window, station):
    window = make_window(station)
    log_in(qtbot, window, "nurse")
    open_visit(qtbot, window, "P-NOTE", site="back")
    window.show_screen("capture")
    result = take_capture(qtbot, window, window.capture_screen.capture_button)
    assert result.outcome.prediction is not None
    assert result.label_combo.currentData() == ""  # no diagnosis chosen
    qtbot.keyClicks(result.note, "raised since March")
    (capture_id,) = save_result(qtbot, result)
    assert label_rows(window) == [(capture_id, "operator", "", "raised since March", "nurse")]
    assert result.message.message == f"Saved: capture #{capture_id}, prediction, note."
    assert not result.save_button.isEnabled()

    # the next capture: a diagnosis and a note
    qtbot.mouseClick(result.retake_button, Qt.MouseButton.LeftButton)
    result = take_capture(qtbot, window, window.capture_screen.capture_button)
    result.label_combo.setCurrentIndex(result.label_combo.findData("nv"))
    qtbot.keyClicks(result.note, "flat")
    (second,) = save_result(qtbot, result)
    assert label_rows(window)[1:] == [(second, "operator", "nv", "flat", "nurse")]
    assert result.message.message == (
        f"Saved: capture #{second}, prediction, diagnosis nv, note.")

    # history shows the note-only label as such (not as a diagnosis)
    window.show_screen("history")
    history = window.screens["history"]
    qtbot.waitUntil(lambda: any(r.capture_id == capture_id for r in history.rows),
                    timeout=TIMEOUT)
    assert {r.capture_id: r.original_label for r in history.rows} == {
        capture_id: "", second: "nv"}
    history.select_ids([capture_id])
    qtbot.mouseClick(history.open_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: history.pages.currentWidget() is history.detail, timeout=TIMEOUT)
    first_line = history.detail.labels.text().splitlines()[0]
    assert first_line.startswith("Operator's label: no diagnosis (note only) — Nurse Kim, ")
    assert first_line.endswith(" — raised since March")


@pytest.fixture()
def strict_station(station):
    """The UI station with quality thresholds no frame meets."""
    return station.replace(quality=dataclasses.replace(station.quality, min_focus=1e9))


def test_a_sequence_stores_exactly_the_prediction_shown(qtbot, make_window, strict_station):
    window = make_window(strict_station)
    log_in(qtbot, window, "nurse")
    open_visit(qtbot, window, "P-SEQ", site="face")
    window.show_screen("capture")

    # quality failed: the screen says "not classified" and nothing is predicted or stored
    result = take_capture(qtbot, window, window.capture_screen.sequence_button)
    assert len(result.taken.sequence) == 7 and result.taken.band == "white"
    assert not result.outcome.quality.passed and result.outcome.prediction is None
    assert result.panel.banner.title.text() == text("ui.result.not_classified_quality")
    ids = save_result(qtbot, result)
    assert len(ids) == 7
    assert prediction_rows(window) == []
    assert result.message.message == "Saved: capture {}.".format(
        ", ".join(f"#{i}" for i in ids))

    # classified anyway: the stored prediction is the one on screen, on the white frame only
    qtbot.mouseClick(result.retake_button, Qt.MouseButton.LeftButton)
    result = take_capture(qtbot, window, window.capture_screen.sequence_button)
    qtbot.waitUntil(result.classify_anyway.isVisible, timeout=TIMEOUT)
    shown_before = result.outcome
    qtbot.mouseClick(result.classify_anyway, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: result.outcome is not shown_before, timeout=TIMEOUT)
    shown = result.outcome.prediction
    assert shown is not None and not result.outcome.quality.passed
    ids = save_result(qtbot, result)
    white = ids[[bf.band.name for bf in result.taken.sequence].index("white")]
    assert prediction_rows(window) == [
        (white, shown.class_probs, shown.group_probs, shown.decision)]
    bars = result.panel.classes.values()
    assert bars == pytest.approx(
        {f"{text(f'class.{c}')} ({c})": p for c, p in prediction_rows(window)[0][1].items()})
    assert label_rows(window) == []
    assert result.message.message == "Saved: capture {}, prediction.".format(
        ", ".join(f"#{i}" for i in ids))
