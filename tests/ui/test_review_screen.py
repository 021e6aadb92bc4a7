"""The review room (issue 19 point 9): nothing pre-chosen, agree vs correct, the outcomes
beside the classes, zoom and pan on the image, undo of the session's last review."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pytest
from PySide6.QtCore import QEvent, QPoint, QPointF, Qt
from PySide6.QtGui import QMouseEvent, QWheelEvent
from PySide6.QtWidgets import QApplication
from sqlalchemy import select

from skinstation.core.i18n import text
from skinstation.services.station import StationService
from skinstation.storage import Operator, Outbox, StationStore
from skinstation.storage.models import ReviewDetail
from tests.ui.helpers import TIMEOUT, log_in

T0 = dt.datetime(2025, 6, 2, 9, 0, tzinfo=dt.UTC)
CLASSES = {"akiec": 0.05, "bcc": 0.05, "bkl": 0.1, "df": 0.05, "mel": 0.15, "nv": 0.55,
           "vasc": 0.05}
GROUPS = {"skin_cancer": 0.25, "other_disease": 0.1, "benign": 0.65}


def _queued_captures(service: StationService, count: int = 2) -> list[int]:
    """Captures with a prediction (top class nv) and the operator's label nv."""
    with service.database.transaction() as session:
        nurse = session.scalar(select(Operator.id).where(Operator.username == "nurse"))
    store = StationStore(service.database)
    visit = store.open_visit(store.create_patient("P-REVIEW-1", actor_id=nurse).id,
                             operator_id=nurse)
    rng = np.random.default_rng(19)
    ids = []
    for index in range(count):
        when = T0 + dt.timedelta(minutes=index)
        pixels = rng.integers(0, 255, (120, 160, 3), dtype=np.uint8)
        capture = store.save_capture(visit.id, pixels, band="white", body_site="back",
                                     device_id="cam", operator_id=nurse, access_time=when,
                                     capture_time=when)
        store.save_prediction(capture.id, model_version="tiny-test-model",
                              class_probabilities=CLASSES, group_probabilities=GROUPS,
                              decision="benign", referral=False)
        store.add_operator_label(capture.id, "nv", author_id=nurse)
        ids.append(capture.id)
    return ids


@pytest.fixture()
def review(qtbot, make_window, station):
    window = make_window(station)
    ids = _queued_captures(window.ctx.require_service())
    log_in(qtbot, window, "derm")
    window.show_screen("review")
    screen = window.screens["review"]
    qtbot.waitUntil(lambda: screen.current is not None, timeout=TIMEOUT)
    assert screen.current.capture.id == ids[0]
    screen.capture_ids = ids
    return screen


def _submit(qtbot, screen):
    screen.message.clear_message()
    qtbot.mouseClick(screen.submit, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: screen.message.kind in ("success", "error"), timeout=TIMEOUT)
    assert screen.message.kind == "success", screen.message.message


def _details(screen, capture_id):
    service = screen.ctx.require_service()
    labels = service.capture_detail(screen.ctx.require_session(), capture_id).labels
    final = labels.final
    detail = labels.details.get(final.id)
    return final.code, None if detail is None else (detail.action, detail.other_text)


def _choose(screen, code):
    screen.diagnosis.setCurrentIndex(screen.diagnosis.findData(code))


def test_nothing_is_chosen_when_a_case_opens(review):
    assert review.diagnosis.currentData() is None
    assert review.diagnosis.currentText() == "Choose a diagnosis or outcome…"
    assert not review.agree.isChecked() and not review.correct.isChecked()
    assert not review.submit.isEnabled()
    assert review.hint.text() == "Choose “Agree” or “Correct to…” first."
    assert review.agree.text() == "Agree with the model:"
    assert review.agree_class.text() == "Melanocytic nevus (mole) (nv)"  # wraps when long
    assert review.agree.accessibleName() == "Agree with the model: Melanocytic nevus (mole) (nv)"
    assert review.correct.text() == "Correct to…"
    codes = [review.diagnosis.itemData(i) for i in range(review.diagnosis.count())]
    assert [c for c in codes if c] == ["akiec", "bcc", "bkl", "df", "mel", "nv", "vasc",
                                       "uncertain", "biopsy_pending", "scc", "other"]
    _choose(review, "nv")  # "correcting" to the model's own class is agreeing
    assert review.correct.isChecked() and not review.submit.isEnabled()
    assert review.hint.text() == "That is the model's own class: choose “Agree” instead."
    _choose(review, "mel")
    assert review.submit.isEnabled() and review.hint.text() == ""


def test_agree_and_correct_are_stored_distinctly(qtbot, review):
    first, second = review.capture_ids
    review.agree.click()
    assert review.submit.isEnabled()
    _submit(qtbot, review)
    qtbot.waitUntil(lambda: review.current is not None and review.current.capture.id == second,
                    timeout=TIMEOUT)
    assert _details(review, first) == ("nv", ("agree", None))
    assert not review.agree.isChecked() and review.diagnosis.currentData() is None
    _choose(review, "bcc")
    _submit(qtbot, review)
    assert _details(review, second) == ("bcc", ("correct", None))


def test_other_needs_its_text_and_each_outcome_is_stored(qtbot, review):
    first, second = review.capture_ids
    _choose(review, "other")
    assert review.other_text.isVisible() and not review.submit.isEnabled()
    assert review.hint.text() == "Describe the other diagnosis."
    qtbot.keyClicks(review.other_text, "keratoacanthoma")
    assert review.submit.isEnabled()
    _submit(qtbot, review)
    assert _details(review, first) == ("other", ("correct", "keratoacanthoma"))
    qtbot.waitUntil(lambda: review.current is not None and review.current.capture.id == second,
                    timeout=TIMEOUT)
    assert not review.other_text.isVisible()
    _choose(review, "biopsy_pending")
    _submit(qtbot, review)
    assert _details(review, second) == ("biopsy_pending", ("correct", None))
    # awaiting its biopsy, the case stays in the queue, marked so
    qtbot.waitUntil(lambda: review.queue and review.queue[0].final_label == "biopsy_pending",
                    timeout=TIMEOUT)
    assert [s.capture_id for s in review.queue] == [second]
    assert review.list.item(0).text().startswith("Awaiting biopsy · ● Likely benign\n")


def _drag(widget, start: QPoint, end: QPoint) -> None:
    def send(kind, point, buttons):
        event = QMouseEvent(kind, QPointF(point), widget.mapToGlobal(QPointF(point)),
                            Qt.MouseButton.LeftButton, buttons, Qt.KeyboardModifier.NoModifier)
        QApplication.sendEvent(widget, event)

    held = Qt.MouseButton.LeftButton
    send(QEvent.Type.MouseButtonPress, start, held)
    send(QEvent.Type.MouseMove, end, held)
    send(QEvent.Type.MouseButtonRelease, end, Qt.MouseButton.NoButton)


def test_zoom_and_pan_change_the_view(qtbot, review):
    zoom = review.zoom
    qtbot.waitUntil(lambda: not zoom.image.isNull() and zoom.isVisible(), timeout=TIMEOUT)
    assert not review.view.image.isVisible()  # the zoomable view took the plain image's place
    fitted = zoom.view_rect()
    assert zoom.zoom == 1.0 and fitted.width() > 0
    assert review.zoom_controls.level.text() == "100%"
    assert not review.zoom_controls.fit.isEnabled()
    qtbot.mouseClick(review.zoom_controls.zoom_in, Qt.MouseButton.LeftButton)
    assert zoom.zoom == pytest.approx(1.25)
    assert zoom.view_rect().width() == pytest.approx(fitted.width() * 1.25)
    assert zoom.view_rect().center() == fitted.center()  # zoomed around the view's centre
    assert review.zoom_controls.level.text() == "125%"
    centre = QPointF(zoom.width() / 2, zoom.height() / 2)
    wheel = QWheelEvent(centre, zoom.mapToGlobal(centre), QPoint(0, 0), QPoint(0, 240),
                        Qt.MouseButton.NoButton, Qt.KeyboardModifier.NoModifier,
                        Qt.ScrollPhase.NoScrollPhase, False)
    QApplication.sendEvent(zoom, wheel)
    assert zoom.zoom == pytest.approx(1.25 ** 3)
    before = zoom.view_rect()
    _drag(zoom, QPoint(100, 100), QPoint(70, 80))  # pan: the image follows the pointer
    after = zoom.view_rect()
    assert (after.left() - before.left(), after.top() - before.top()) == (
        pytest.approx(-30), pytest.approx(-20))
    assert after.width() == pytest.approx(before.width())
    qtbot.mouseClick(review.zoom_controls.zoom_out, Qt.MouseButton.LeftButton)
    assert zoom.zoom == pytest.approx(1.25 ** 2)
    qtbot.mouseClick(review.zoom_controls.fit, Qt.MouseButton.LeftButton)
    assert zoom.zoom == 1.0 and zoom.view_rect() == fitted
    _drag(zoom, QPoint(100, 100), QPoint(40, 40))  # fitted, the whole image stays in view
    assert zoom.view_rect() == fitted


def test_undo_restores_the_case_to_the_queue(qtbot, review):
    first, second = review.capture_ids
    assert not review.undo.isEnabled()
    _choose(review, "mel")
    _submit(qtbot, review)
    qtbot.waitUntil(lambda: [s.capture_id for s in review.queue] == [second], timeout=TIMEOUT)
    assert review.undo.isEnabled()
    review.message.clear_message()
    qtbot.mouseClick(review.undo, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: review.message.kind in ("success", "error"), timeout=TIMEOUT)
    assert review.message.message.endswith(text("ui.review.undone").format(
        id=first, label="Melanoma (mel)"))
    qtbot.waitUntil(lambda: [s.capture_id for s in review.queue] == [first, second],
                    timeout=TIMEOUT)
    assert not review.undo.isEnabled()
    assert _details(review, first) == ("nv", None)  # the final label is the operator's again
    with review.ctx.require_service().database.transaction() as session:
        withdrawn = session.scalars(select(ReviewDetail)).one()
    assert withdrawn.withdrawn_by_id == review.ctx.require_session().operator_id


def test_a_synced_review_cannot_be_undone_here(qtbot, review):
    first, _ = review.capture_ids
    review.agree.click()
    _submit(qtbot, review)
    service = review.ctx.require_service()
    outbox = Outbox(service.database)
    outbox.mark_sent(first)
    outbox.mark_confirmed(first, engine_capture_id=3, duplicate=False)
    review.message.clear_message()
    qtbot.mouseClick(review.undo, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: review.message.kind in ("warning", "error"), timeout=TIMEOUT)
    assert review.message.kind == "warning", review.message.message
    assert review.message.message.endswith(
        f"The review of capture #{first} has already been synced to the engine; it cannot be "
        "undone here.")
    assert _details(review, first) == ("nv", ("agree", None))
    assert not review.undo.isEnabled()


def test_the_review_room_speaks_korean(qtbot, review):
    review.ctx.set_language("ko")
    assert review.agree.text() == "모델 판단에 동의:"
    assert review.agree.accessibleName() == "모델 판단에 동의: 멜라닌세포 모반 (점) (nv)"
    assert review.diagnosis.currentText() == "진단 또는 결과를 선택하세요…"
    assert review.undo.text() == "마지막 판독 취소"
    assert review.zoom_controls.fit.text() == "맞춤"
    index = review.diagnosis.findData("biopsy_pending")
    assert review.diagnosis.itemText(index) == "조직검사 의뢰 / 결과 대기"
