"""Review (dermatologists): the queue, urgent cases first; confirm or correct, add a note."""

from __future__ import annotations

from collections.abc import Mapping

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QComboBox,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    QVBoxLayout,
    QWidget,
)

from skinstation.services.station import CaptureDetail
from skinstation.storage import CaptureSummary
from skinstation.ui.context import StationContext
from skinstation.ui.screens.base import Screen
from skinstation.ui.screens.history import decision_words
from skinstation.ui.screens.result import CLASS_CODES
from skinstation.ui.widgets.capture_view import CaptureView, local_time
from skinstation.ui.widgets.common import (
    MessageBar,
    heading,
    make_button,
    name_control,
    set_button_text,
    text_or,
)


class ReviewScreen(Screen):
    """The dermatologist's queue and review form."""

    screen_id = "review"
    title_key = "ui.nav.review"

    def __init__(self, ctx: StationContext, parent: QWidget | None = None) -> None:
        super().__init__(ctx, parent)
        self.queue: list[CaptureSummary] = []
        self.names: Mapping[int, str] = {}
        self.current: CaptureDetail | None = None
        self.title = heading("reviewTitle", self)
        self.list = QListWidget(self)
        self.list.setObjectName("reviewQueue")
        self.list.setMinimumWidth(300)
        self.list.setSpacing(2)
        self.list.setWordWrap(True)
        self.list.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.list.currentRowChanged.connect(self._row_changed)
        self.refresh_button = make_button("reviewRefresh", "", self)
        self.refresh_button.clicked.connect(self.refresh)
        self.view = CaptureView(ctx.tr, "reviewDetail", parent=self)
        self.diagnosis_title = QLabel(self)
        self.diagnosis = QComboBox(self)
        self.diagnosis.setObjectName("reviewDiagnosis")
        self.diagnosis.setMinimumHeight(44)
        self.note_title = QLabel(self)
        self.note = QLineEdit(self)
        self.note.setObjectName("reviewNote")
        self.note.setMinimumHeight(44)
        self.note.setMaxLength(2000)
        self.submit = make_button("reviewSubmit", "primary", self)
        self.submit.clicked.connect(self.submit_review)
        self.message = MessageBar("reviewMessage", self)
        form = QFormLayout()
        form.addRow(self.diagnosis_title, self.diagnosis)
        form.addRow(self.note_title, self.note)
        self.diagnosis_title.setBuddy(self.diagnosis)
        self.note_title.setBuddy(self.note)
        left = QVBoxLayout()
        left.addWidget(self.list, 1)
        left.addWidget(self.refresh_button)
        right = QVBoxLayout()
        right.addWidget(self.view, 1)
        right.addLayout(form)
        right.addWidget(self.submit)
        right.addWidget(self.message)
        row = QHBoxLayout()
        row.addLayout(left, 1)
        row.addLayout(right, 2)
        layout = QVBoxLayout(self)
        layout.addWidget(self.title)
        layout.addLayout(row, 1)
        self._update_state()

    def retranslate(self) -> None:
        """See :meth:`Screen.retranslate`."""
        tr = self.ctx.tr
        self.title.setText(tr("ui.review.title"))
        name_control(self.list, tr("ui.review.queue"))
        set_button_text(self.refresh_button, tr("ui.review.refresh"))
        self.diagnosis_title.setText(tr("ui.review.diagnosis"))
        name_control(self.diagnosis, tr("ui.review.diagnosis"))
        self.note_title.setText(tr("ui.review.note"))
        name_control(self.note, tr("ui.review.note"))
        set_button_text(self.submit, tr("ui.review.submit"))
        current = self.diagnosis.currentData()
        self.diagnosis.clear()
        for code in CLASS_CODES:
            self.diagnosis.addItem(f"{tr(f'class.{code}')} ({code})", code)
        if current:
            self.diagnosis.setCurrentIndex(max(0, self.diagnosis.findData(current)))
        self._fill_list()
        self.view.retranslate()

    def _fill_list(self) -> None:
        tr = self.ctx.tr
        row = self.list.currentRow()
        self.list.blockSignals(True)
        self.list.clear()
        for summary in self.queue:
            text = (f"{decision_words(tr, summary.decision, summary.referral)}\n"
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

    def _update_state(self) -> None:
        self.submit.setEnabled(self.current is not None)

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
            self.current = None
            self.view.show_detail(None)
        self._update_state()

    def _row_changed(self, row: int) -> None:
        if not 0 <= row < len(self.queue):
            return
        self.open(self.queue[row].capture_id)

    def open(self, capture_id: int) -> None:
        """Show a queued capture for review."""
        service, session = self.ctx.require_service(), self.ctx.require_session()
        self.ctx.run_data(lambda: service.capture_detail(session, capture_id), self._opened,
                          self.message.error)

    def _opened(self, detail: CaptureDetail) -> None:
        self.current = detail
        self.view.show_detail(detail, self.names)
        probabilities = (detail.prediction or {}).get("class_probabilities") or {}
        if detail.labels.final is not None:
            proposal = detail.labels.final.code
        else:
            proposal = max(probabilities, key=probabilities.get, default="")
        index = self.diagnosis.findData(proposal)
        self.diagnosis.setCurrentIndex(index if index >= 0 else 0)
        self.note.clear()
        self._update_state()

    # -- review ---------------------------------------------------------------------------

    def submit_review(self) -> None:
        """Store the review (the final label, with the reviewer and the time)."""
        detail = self.current
        if detail is None:
            return
        service, session = self.ctx.require_service(), self.ctx.require_session()
        code, note = self.diagnosis.currentData(), self.note.text().strip() or None
        capture_id = detail.capture.id
        self.submit.setEnabled(False)

        def store() -> CaptureDetail:
            service.review(session, capture_id, code, note=note)
            return service.capture_detail(session, capture_id)

        self.ctx.run_data(store, self._stored, self._failed)

    def _stored(self, detail: CaptureDetail) -> None:
        review = detail.labels.final
        assert review is not None
        author = self.names.get(review.author_id, self.ctx.session.display_name
                                if self.ctx.session else "")
        self.message.show_message(self.ctx.tr(
            "ui.review.stored", id=detail.capture.id, label=f"{review.code}", author=author,
            time=local_time(review.created_at)), "success")
        self.current = None
        self.view.show_detail(detail, self.names)
        self.refresh()

    def _failed(self, message: str) -> None:
        self.message.error(message)
        self._update_state()

    # -- hooks ----------------------------------------------------------------------------

    def on_shown(self) -> None:
        """Reload the queue."""
        self.refresh()

    def reset(self) -> None:
        """Forget the queue and the open case."""
        self.queue, self.names, self.current = [], {}, None
        self.view.show_detail(None)
        self.list.clear()
        self.message.clear_message()
        self._update_state()
