"""A clinic day in one test, through the real window (issue 19's "full day path"):

the administrator creates a staff member and a dermatologist → staff logs in → a patient with
a validated pseudonym (a name with a date of birth is refused first) → capture by the space
bar and by the foot pedal (F12) right after navigating to the capture screen → a note saved
without a diagnosis → history shows the band, the note and the highlight → the dermatologist
reviews with an explicit choice → undoes it → reviews again.

The simulated dermatoscope holds one real HAM10000 melanoma image, the one the test model
flags most strongly, so the day includes a suspected skin cancer to highlight and review.
"""

from __future__ import annotations

import csv
import shutil
import sqlite3
from pathlib import Path

import numpy as np
import pytest
from PySide6.QtCore import Qt

from skinstation.auth import Role
from skinstation.core.i18n import text
from skinstation.services.models import ModelManager
from skinstation.storage import ReviewState
from skinstation.ui.main_window import MainWindow
from skinstation.ui.widgets.history_lines import COLUMNS, SUSPECTED_SYMBOL
from tests.ui.helpers import (
    TIMEOUT,
    create_account,
    create_first_admin,
    log_in,
    save_result,
    wait_for_preview,
)
from tests.ui.test_capture_keys import press

NAME_WITH_BIRTH_DATE = "Hong Gildong 1961-03-02"
PSEUDONYM = "P-DAY-0001"


def _most_suspect_melanoma(ham_dir: Path, models: ModelManager, folder: Path) -> str:
    """Copy into ``folder`` the melanoma image (of the first 40) with the highest p(cancer)."""
    from PIL import Image

    with (ham_dir / "HAM10000_metadata.csv").open(encoding="utf-8") as handle:
        melanomas = [row["image_id"] for row in csv.DictReader(handle) if row["dx"] == "mel"]
    classifier = models.classifier()
    best, best_p = "", -1.0
    for image_id in melanomas[:40]:
        pixels = np.asarray(Image.open(ham_dir / "images" / f"{image_id}.jpg").convert("RGB"))
        p_cancer = classifier.classify(pixels).group_probs.get("skin_cancer", -1.0)
        if p_cancer > best_p:
            best, best_p = image_id, p_cancer
    folder.mkdir()
    shutil.copyfile(ham_dir / "images" / f"{best}.jpg", folder / f"{best}.jpg")
    return best


def _label_rows(window: MainWindow) -> list[tuple[int, str, str, str | None]]:
    path = window.ctx.settings.home / "station.db"
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as db:
        return [tuple(r) for r in db.execute(
            "SELECT capture_id, kind, code, operators.username FROM labels "
            "JOIN operators ON operators.id = labels.author_id ORDER BY labels.id")]


def _capture_by_key(qtbot, window: MainWindow, key: Qt.Key) -> None:
    """Right after the navigation that led to the capture screen: press ``key``."""
    capture, result = window.capture_screen, window.result_screen
    assert window.current_screen is capture
    wait_for_preview(qtbot, window)
    qtbot.waitUntil(capture.capture_button.isEnabled, timeout=TIMEOUT)
    previous = result.taken
    press(qtbot, window, key)
    qtbot.waitUntil(lambda: result.taken is not previous and result.outcome is not None,
                    timeout=TIMEOUT)
    assert window.current_screen is result
    if result.outcome.prediction is None:  # the quality check failed: classify anyway
        qtbot.mouseClick(result.classify_anyway, Qt.MouseButton.LeftButton)
        qtbot.waitUntil(lambda: result.outcome.prediction is not None, timeout=TIMEOUT)


def _submit_review(qtbot, review) -> None:
    review.message.clear_message()
    qtbot.mouseClick(review.submit, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: review.message.kind in ("success", "error"), timeout=TIMEOUT)
    assert review.message.kind == "success", review.message.message


@pytest.mark.slow
def test_a_clinic_day(qtbot, make_window, ui_settings, ham_dir, shared_models, tmp_path):
    image_id = _most_suspect_melanoma(ham_dir, shared_models, tmp_path / "lesion")
    camera = ui_settings.camera.__class__(**{**ui_settings.camera.__dict__,
                                             "simulator_folder": str(tmp_path / "lesion")})
    window = make_window(ui_settings.replace(camera=camera))

    # -- first run: the administrator, then the clinic's accounts
    create_first_admin(qtbot, window)
    assert window.ctx.session.role is Role.ADMIN
    create_account(qtbot, window, "nurse", "Nurse Kim", Role.STAFF)
    create_account(qtbot, window, "derm", "Dr Lee", Role.DERMATOLOGIST)
    qtbot.mouseClick(window.logout_button, Qt.MouseButton.LeftButton)
    assert window.ctx.session is None

    # -- staff: a real name is refused, the pseudonym is created only when confirmed
    log_in(qtbot, window, "nurse")
    patient = window.screens["patient"]
    assert window.current_screen is patient
    for typed in (NAME_WITH_BIRTH_DATE, PSEUDONYM):
        patient.pseudonym.clear()
        qtbot.keyClicks(patient.pseudonym, typed)
        patient.message.clear_message()
        qtbot.mouseClick(patient.find_button, Qt.MouseButton.LeftButton)
        qtbot.waitUntil(lambda: patient.message.kind == "error"
                        or patient.create_button.isVisible(), timeout=TIMEOUT)
        if typed == NAME_WITH_BIRTH_DATE:
            assert patient.message.message.startswith("This looks like a date of birth")
            assert not patient.create_button.isVisible()
    qtbot.mouseClick(patient.create_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(patient.start_button.isEnabled, timeout=TIMEOUT)
    qtbot.mouseClick(patient.start_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: window.ctx.visit is not None, timeout=TIMEOUT)
    qtbot.mouseClick(patient.site_buttons["back"], Qt.MouseButton.LeftButton)
    assert window.ctx.visit.patient.pseudonym == PSEUDONYM

    # -- the space bar right after "Go to capture"; a note without a diagnosis
    qtbot.mouseClick(patient.capture_button, Qt.MouseButton.LeftButton)
    _capture_by_key(qtbot, window, Qt.Key.Key_Space)
    result = window.result_screen
    assert result.taken.frame.label.startswith(image_id)
    assert result.label_combo.currentData() == ""
    qtbot.keyClicks(result.note, "grew since spring")
    (first,) = save_result(qtbot, result)
    assert result.message.message == f"Saved: capture #{first}, prediction, note."

    # -- the foot pedal right after the sidebar
    qtbot.mouseClick(window.nav_buttons["capture"], Qt.MouseButton.LeftButton)
    _capture_by_key(qtbot, window, Qt.Key.Key_F12)
    (second,) = save_result(qtbot, result)
    assert _label_rows(window) == [(first, "operator", "", "nurse")]

    # -- history: the band, the note, the highlight exactly where the model suspects cancer
    window.show_screen("history")
    history = window.screens["history"]
    qtbot.waitUntil(lambda: {r.capture_id for r in history.rows} == {first, second},
                    timeout=TIMEOUT)
    suspected = set()
    for row, (_entry, summary) in enumerate(history.lines):
        cells = {name: history.table.item(row, i).text() for i, name in enumerate(COLUMNS)}
        assert cells["band"] == text("ui.band.white")
        assert cells["visit"] == "1"
        assert cells["note"] == ("grew since spring" if summary.capture_id == first else "—")
        flagged = summary.decision == "skin_cancer" or bool(summary.referral)
        assert cells["thumbnail"].startswith(SUSPECTED_SYMBOL) == flagged
        if flagged:
            suspected.add(summary.capture_id)
    assert suspected, "the held melanoma should be flagged by the test model"
    qtbot.mouseClick(window.logout_button, Qt.MouseButton.LeftButton)

    # -- the dermatologist: nothing chosen, an explicit correction, undo, then agree
    log_in(qtbot, window, "derm")
    window.show_screen("review")
    review = window.screens["review"]
    qtbot.waitUntil(lambda: review.current is not None, timeout=TIMEOUT)
    case = review.current.capture.id
    assert case in (first, second)
    assert review.diagnosis.currentData() is None and not review.submit.isEnabled()
    model_top = max(review.current.prediction["class_probabilities"].items(),
                    key=lambda item: item[1])[0]
    correction = "mel" if model_top != "mel" else "nv"
    review.diagnosis.setCurrentIndex(review.diagnosis.findData(correction))
    assert review.correct.isChecked() and review.submit.isEnabled()
    _submit_review(qtbot, review)
    qtbot.waitUntil(lambda: case not in [s.capture_id for s in review.queue], timeout=TIMEOUT)
    assert _label_rows(window)[-1] == (case, "review", correction, "derm")

    qtbot.mouseClick(review.undo, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: case in [s.capture_id for s in review.queue], timeout=TIMEOUT)
    service, session = window.ctx.require_service(), window.ctx.require_session()
    # both captures were saved without a diagnosis: with the review withdrawn, none is final
    assert service.capture_detail(session, case).labels.final is None

    review.open(case)
    qtbot.waitUntil(lambda: review.current is not None and review.current.capture.id == case,
                    timeout=TIMEOUT)
    assert review.diagnosis.currentData() is None and not review.submit.isEnabled()
    review.agree.click()
    _submit_review(qtbot, review)
    final = service.capture_detail(session, case).labels.final
    assert (final.kind, final.code) == ("review", model_top)
    summary = next(r for r in service.history(session) if r.capture_id == case)
    assert summary.review_state == ReviewState.REVIEWED
