"""Review (dermatologists): the queue, urgent cases first; agree or correct, add a note.

Nothing is chosen when a case opens: the dermatologist either agrees with the model's top
class or corrects it to another class or outcome (uncertain, biopsy requested / pending, SCC,
other with its text); the stored review records which. The image zooms and pans. The last
review of this login session can be undone while it has not been synced
(:mod:`skinstation.services.review`).
"""

from __future__ import annotations

from collections.abc import Mapping

from PySide6.QtCore import QSize, Qt
from PySide6.QtWidgets import (
    QButtonGroup,
    QComboBox,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    QRadioButton,
    QVBoxLayout,
    QWidget,
)

from skinstation.services import review as reviews
from skinstation.services.station import CaptureDetail
from skinstation.storage import CaptureSummary, Label
from skinstation.storage.labels import BIOPSY_PENDING, OTHER
from skinstation.ui.context import StationContext
from skinstation.ui.screens.base import Screen
from skinstation.ui.screens.history import decision_words
from skinstation.ui.widgets.capture_view import CaptureView, local_time
from skinstation.ui.widgets.common import (
    MessageBar,
    heading,
    make_button,
    name_control,
    set_button_text,
    text_or,
)
from skinstation.ui.widgets.zoom_view import ZoomControls, ZoomView

UNDONE, SYNCED = "undone", "synced"


class ReviewScreen(Screen):
    """The dermatologist's queue and review form."""

    screen_id = "review"
    title_key = "ui.nav.review"

    def __init__(self, ctx: StationContext, parent: QWidget | None = None) -> None:
        super().__init__(ctx, parent)
        self.queue: list[CaptureSummary] = []
        self.names: Mapping[int, str] = {}
        self.current: CaptureDetail | None = None
        self.top_class: str | None = None
        self.last_review: Label | None = None  # this session's last review, for undo
        self.title = heading("reviewTitle", self)
        self.list = QListWidget(self)
        self.list.setObjectName("reviewQueue")
        self.list.setMinimumWidth(220)  # the case (image and probabilities) needs the room
        self.list.setMaximumWidth(300)
        self.list.setSpacing(2)
        self.list.setWordWrap(True)
        self.list.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.list.currentRowChanged.connect(self._row_changed)
        self.refresh_button = make_button("reviewRefresh", "", self)
        self.refresh_button.clicked.connect(self.refresh)
        self.view = CaptureView(ctx.tr, "reviewDetail", parent=self)
        self.zoom = ZoomView("reviewImage", QSize(320, 240), self.view)
        self.view.image.hide()  # the zoomable image takes its place
        layout_of_view = self.view.layout()
        if layout_of_view is not None:
            layout_of_view.replaceWidget(self.view.image, self.zoom)
        self.zoom_controls = ZoomControls(ctx.tr, self.zoom, "review", self)
        self.choice_title = QLabel(self)
        self.choice_title.setObjectName("reviewChoiceTitle")
        self.agree = QRadioButton(self)
        self.agree.setObjectName("reviewAgree")
        self.correct = QRadioButton(self)
        self.correct.setObjectName("reviewCorrect")
        self.agree_class = QLabel(self)  # the model's class, wrapped: names run long
        self.agree_class.setObjectName("reviewAgreeClass")
        self.agree_class.setWordWrap(True)
        self.agree_class.setIndent(28)
        for choice in (self.agree, self.correct):  # a finger, not a mouse pointer, may pick
            choice.setMinimumHeight(44)
        self.choice = QButtonGroup(self)
        self.choice.addButton(self.agree)
        self.choice.addButton(self.correct)
        self.choice.buttonToggled.connect(lambda *_: self._update_state())
        self.diagnosis = QComboBox(self)
        self.diagnosis.setObjectName("reviewDiagnosis")
        self.diagnosis.setMinimumHeight(44)
        self.diagnosis.currentIndexChanged.connect(self._diagnosis_changed)
        self.other_title = QLabel(self)
        self.other_text = QLineEdit(self)
        self.other_text.setObjectName("reviewOtherText")
        self.other_text.setMinimumHeight(44)
        self.other_text.setMaxLength(200)
        self.other_text.textChanged.connect(lambda *_: self._update_state())
        self.hint = QLabel(self)
        self.hint.setObjectName("reviewHint")
        self.hint.setWordWrap(True)
        self.note_title = QLabel(self)
        self.note = QLineEdit(self)
        self.note.setObjectName("reviewNote")
        self.note.setMinimumHeight(44)
        self.note.setMaxLength(2000)
        self.submit = make_button("reviewSubmit", "primary", self)
        self.submit.clicked.connect(self.submit_review)
        self.undo = make_button("reviewUndo", "", self)
        self.undo.clicked.connect(self.undo_last)
        self.message = MessageBar("reviewMessage", self)
        correct_row = QHBoxLayout()
        correct_row.addWidget(self.correct)
        correct_row.addWidget(self.diagnosis, 1)
        form = QFormLayout()
        form.addRow(self.other_title, self.other_text)
        form.addRow(self.note_title, self.note)
        self.other_title.setBuddy(self.other_text)
        self.note_title.setBuddy(self.note)
        buttons = QHBoxLayout()
        buttons.addWidget(self.submit, 1)
        buttons.addWidget(self.undo)
        left = QVBoxLayout()
        left.addWidget(self.list, 1)
        left.addWidget(self.refresh_button)
        right = QVBoxLayout()
        right.addWidget(self.view, 1)
        right.addWidget(self.zoom_controls)
        right.addWidget(self.choice_title)
        right.addWidget(self.agree)
        right.addWidget(self.agree_class)
        right.addLayout(correct_row)
        right.addWidget(self.hint)
        right.addLayout(form)
        right.addLayout(buttons)
        right.addWidget(self.message)
        row = QHBoxLayout()
        row.addLayout(left, 1)
        row.addLayout(right, 3)
        layout = QVBoxLayout(self)
        layout.addWidget(self.title)
        layout.addLayout(row, 1)
        self._update_state()

    # -- texts ----------------------------------------------------------------------------

    def retranslate(self) -> None:
        """See :meth:`Screen.retranslate`."""
        tr = self.ctx.tr
        self.title.setText(tr("ui.review.title"))
        name_control(self.list, tr("ui.review.queue"))
        set_button_text(self.refresh_button, tr("ui.review.refresh"))
        self.choice_title.setText(tr("ui.review.choice"))
        name_control(self.diagnosis, tr("ui.review.correctTo"))
        self.other_title.setText(tr("ui.review.otherText"))
        name_control(self.other_text, tr("ui.review.otherText"))
        self.note_title.setText(tr("ui.review.note"))
        name_control(self.note, tr("ui.review.note"))
        set_button_text(self.submit, tr("ui.review.submit"))
        set_button_text(self.undo, tr("ui.review.undo"))
        self._fill_choices()
        self._fill_list()
        self.view.retranslate()
        self.zoom.set_placeholder(tr("ui.detail.empty"))
        self.zoom_controls.retranslate()
        self._update_state()

    def _code_name(self, code: str) -> str:
        return f"{self.ctx.tr(f'class.{code}')} ({code})"

    def _fill_choices(self) -> None:
        """The "Correct to…" list: nothing chosen, the model's classes, then the outcomes."""
        tr, service = self.ctx.tr, self.ctx.service
        current = self.diagnosis.currentData()
        self.diagnosis.blockSignals(True)
        self.diagnosis.clear()
        self.diagnosis.addItem(tr("ui.review.choose"), None)
        if service is not None:
            choices = reviews.review_choices(service)
            for code in choices.classes:
                self.diagnosis.addItem(self._code_name(code), code)
            self.diagnosis.insertSeparator(self.diagnosis.count())
            for code in choices.outcomes:
                self.diagnosis.addItem(tr(f"ui.review.outcome.{code}"), code)
        index = self.diagnosis.findData(current) if current else 0
        self.diagnosis.setCurrentIndex(max(0, index))
        self.diagnosis.blockSignals(False)

    def _fill_list(self) -> None:
        tr = self.ctx.tr
        row = self.list.currentRow()
        self.list.blockSignals(True)
        self.list.clear()
        for summary in self.queue:
            # only a review gives "biopsy pending" (an operator's label is a class)
            state = (f"{tr('ui.review.awaitingBiopsy')} · "
                     if summary.final_label == BIOPSY_PENDING else "")
            text = (f"{state}{decision_words(tr, summary.decision, summary.referral)}\n"
                    f"{summary.pseudonym} · "
                    f"{text_or(tr, f'ui.site.{summary.body_site}', summary.body_site)} · "
                    f"{local_time(summary.capture_time)} · #{summary.capture_id}")
            item = QListWidgetItem(text)
            item.setData(Qt.ItemDataRole.UserRole, summary.capture_id)
            self.list.addItem(item)
        if not self.queue:
            self.list.addItem(QListWidgetItem(tr("ui.review.empty")))
        self.list.blockSignals(False)
        if 0 <= row < len(self.queue):
            self.list.setCurrentRow(row)

    # -- the choice -----------------------------------------------------------------------

    def chosen(self) -> tuple[reviews.ReviewAction, str | None] | None:
        """The action and code chosen, or ``None`` while the choice is not complete."""
        if self.current is None:
            return None
        if self.agree.isChecked() and self.top_class is not None:
            return reviews.ReviewAction.AGREE, self.top_class
        code = self.diagnosis.currentData()
        if not self.correct.isChecked() or code is None or code == self.top_class:
            return None
        if code == OTHER and not self.other_text.text().strip():
            return None
        return reviews.ReviewAction.CORRECT, code

    def _diagnosis_changed(self, _index: int) -> None:
        if self.diagnosis.currentData() is not None:
            self.correct.setChecked(True)  # choosing a correction is choosing to correct
        self._update_state()

    def _clear_choice(self) -> None:
        self.choice.setExclusive(False)
        self.agree.setChecked(False)
        self.correct.setChecked(False)
        self.choice.setExclusive(True)
        self.diagnosis.blockSignals(True)
        self.diagnosis.setCurrentIndex(0)
        self.diagnosis.blockSignals(False)
        self.other_text.clear()
        self.note.clear()

    def _update_state(self) -> None:
        tr, open_case = self.ctx.tr, self.current is not None
        top = self.top_class
        if top:  # "Agree with the model:" and, below it, the class (it may need two lines)
            set_button_text(self.agree, tr("ui.review.agree_short"))
            name_control(self.agree, tr("ui.review.agree", label=self._code_name(top)))
        else:
            set_button_text(self.agree, tr("ui.review.agreeNone"))
        self.agree_class.setText(self._code_name(top) if top else "")
        self.agree_class.setVisible(bool(top))
        set_button_text(self.correct, tr("ui.review.correct"))
        self.agree.setEnabled(open_case and top is not None)
        self.correct.setEnabled(open_case)
        self.diagnosis.setEnabled(open_case)
        code = self.diagnosis.currentData()
        other = code == OTHER and self.correct.isChecked()
        self.other_title.setVisible(other)
        self.other_text.setVisible(other)
        if self.correct.isChecked() and code is not None and code == top:
            self.hint.setText(tr("ui.review.sameAsModel"))
        elif other and not self.other_text.text().strip():
            self.hint.setText(tr("ui.review.otherNeeded"))
        elif open_case and self.chosen() is None:
            self.hint.setText(tr("ui.review.chooseFirst"))
        else:
            self.hint.setText("")
        self.submit.setEnabled(self.chosen() is not None)
        self.undo.setEnabled(self.last_review is not None)

    # -- loading --------------------------------------------------------------------------

    def refresh(self) -> None:
        """Reload the queue."""
        if self.ctx.service is None or self.ctx.session is None:
            return
        service, session = self.ctx.service, self.ctx.session
        self.ctx.run_data(lambda: (service.review_queue(session), service.operator_names(session)),
                          self._loaded, self.message.error)

    def _loaded(self, result: tuple[list[CaptureSummary], dict[int, str]]) -> None:
        self.queue, self.names = result
        self._fill_list()
        if self.queue and (self.current is None or self.current.capture.id not in
                           {s.capture_id for s in self.queue}):
            self.list.setCurrentRow(0)
        elif not self.queue:
            self._show(None)
        self._update_state()

    def _row_changed(self, row: int) -> None:
        if not 0 <= row < len(self.queue):
            return
        self.open(self.queue[row].capture_id)

    def open(self, capture_id: int) -> None:
        """Show a queued capture for review (nothing chosen)."""
        service, session = self.ctx.require_service(), self.ctx.require_session()
        self.ctx.run_data(lambda: service.capture_detail(session, capture_id), self._show,
                          self.message.error)

    def _show(self, detail: CaptureDetail | None) -> None:
        self.current = detail
        self.view.show_detail(detail, self.names)
        if detail is None:
            self.zoom.clear()
        else:
            self.zoom.set_array(detail.pixels)
        self.top_class = None if detail is None else reviews.model_top_class(detail.prediction)
        self._clear_choice()
        self._update_state()

    # -- review and undo ------------------------------------------------------------------

    def submit_review(self) -> None:
        """Store the review: the action and code chosen, the note, an "other" text."""
        detail, chosen = self.current, self.chosen()
        if detail is None or chosen is None:
            return
        service, session = self.ctx.require_service(), self.ctx.require_session()
        action, code = chosen
        note = self.note.text().strip() or None
        other = self.other_text.text().strip() if code == OTHER else None
        capture_id = detail.capture.id
        self.submit.setEnabled(False)

        def store() -> tuple[Label, CaptureDetail]:
            stored = reviews.submit_review(service, session, capture_id, action, code,
                                           note=note, other_text=other)
            return stored.label, service.capture_detail(session, capture_id)

        self.ctx.run_data(store, self._stored, self._failed)

    def _stored(self, result: tuple[Label, CaptureDetail]) -> None:
        review, detail = result
        self.last_review = review
        author = self.names.get(review.author_id, self.ctx.session.display_name
                                if self.ctx.session else "")
        self.message.show_message(self.ctx.tr(
            "ui.review.stored", id=detail.capture.id, label=self._code_name(review.code),
            author=author, time=local_time(review.created_at)), "success")
        self.current = None
        self.view.show_detail(detail, self.names)
        self._update_state()  # nothing open to review until the next case; undo offered
        self.refresh()

    def undo_last(self) -> None:
        """Undo this session's last review, unless it may already be on the engine."""
        review = self.last_review
        if review is None:
            return
        service, session = self.ctx.require_service(), self.ctx.require_session()
        self.undo.setEnabled(False)

        def withdraw() -> str:
            if reviews.review_synced(service, session, review.id):
                return SYNCED
            try:
                reviews.undo_review(service, session, review.id)
            except reviews.ReviewSyncedError:
                return SYNCED
            return UNDONE

        self.ctx.run_data(withdraw, self._undone, self._failed)

    def _undone(self, outcome: str) -> None:
        review = self.last_review
        assert review is not None
        self.last_review = None
        if outcome == SYNCED:
            self.message.show_message(self.ctx.tr("ui.review.undoSynced", id=review.capture_id),
                                      "warning")
        else:
            self.message.show_message(self.ctx.tr("ui.review.undone", id=review.capture_id,
                                                  label=self._code_name(review.code)),
                                      "success")
        self.current = None
        self.refresh()
        self._update_state()

    def _failed(self, message: str) -> None:
        self.message.error(message)
        self._update_state()

    # -- hooks ----------------------------------------------------------------------------

    def on_shown(self) -> None:
        """Reload the choices and the queue."""
        self._fill_choices()
        self.refresh()

    def reset(self) -> None:
        """Forget the queue, the open case and the session's last review."""
        self.queue, self.names, self.current, self.last_review = [], {}, None, None
        self._show(None)
        self.list.clear()
        self.message.clear_message()
        self._update_state()
