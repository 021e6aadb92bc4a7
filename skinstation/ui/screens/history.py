"""History: captures by patient, date, decision and review state; open one; compare two.

One line per capture action: a multispectral sequence is one line (its white frame's image
and decision, its bands listed) that opens to every frame. Suspected skin cancer and
referrals are highlighted by colour AND a symbol (with a legend), never colour alone.
Visit numbers count each patient's own visits (1, 2, 3...), from storage. The selected
capture's referral report, DICOM file or FHIR bundle is written from here
(:class:`~skinstation.ui.widgets.capture_export.CaptureExportBar`).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping

from PySide6.QtCore import QSize
from PySide6.QtGui import QPixmap
from PySide6.QtWidgets import (
    QAbstractItemView,
    QComboBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QStackedWidget,
    QTableWidget,
    QVBoxLayout,
    QWidget,
)

from skinstation.services.history import HistoryEntry, group_history
from skinstation.services.station import CaptureDetail
from skinstation.storage import CaptureSummary, ReviewState
from skinstation.ui.context import StationContext
from skinstation.ui.screens.base import Screen
from skinstation.ui.widgets.capture_export import CaptureExportBar
from skinstation.ui.widgets.capture_view import CaptureView
from skinstation.ui.widgets.common import (
    MessageBar,
    heading,
    make_button,
    name_control,
    set_button_text,
)
from skinstation.ui.widgets.compare import CompareView
from skinstation.ui.widgets.history_lines import (
    COLUMNS,
    decision_words,
    legend_text,
    line_items,
)
from skinstation.ui.workers import to_qimage

PERIODS = (("all", None), ("today", 0), ("week", 7), ("month", 30), ("year", 365))
DECISIONS = ("skin_cancer", "indeterminate", "other_disease", "benign", "not_assessable")
THUMBNAILS = 40


class HistoryScreen(Screen):
    """Browse stored captures; open one; compare two of one patient."""

    screen_id = "history"
    title_key = "ui.nav.history"

    def __init__(self, ctx: StationContext, parent: QWidget | None = None) -> None:
        super().__init__(ctx, parent)
        self.rows: list[CaptureSummary] = []
        """Every capture listed (each band frame of a sequence is a row here)."""
        self.entries: list[HistoryEntry] = []
        """One per capture action: a sequence's frames are one entry."""
        self.expanded: set[int] = set()
        """Main capture ids of the sequences shown with all their frames."""
        self.lines: list[tuple[HistoryEntry, CaptureSummary]] = []
        """What each table row shows: its entry and the capture of that row."""
        self.names: Mapping[int, str] = {}
        self.thumbs: dict[int, QPixmap] = {}
        self.title = heading("historyTitle", self)
        self.patient_filter = QLineEdit(self)
        self.patient_filter.setObjectName("historyPatient")
        self.patient_filter.setMinimumHeight(44)
        self.patient_filter.returnPressed.connect(self.refresh)
        self.period = QComboBox(self)
        self.period.setObjectName("historyPeriod")
        self.decision = QComboBox(self)
        self.decision.setObjectName("historyDecision")
        self.review = QComboBox(self)
        self.review.setObjectName("historyReview")
        for combo in (self.period, self.decision, self.review):
            combo.setMinimumHeight(44)
            combo.activated.connect(lambda _index: self.refresh())
        self.search_button = make_button("historySearch", "primary", self)
        self.search_button.clicked.connect(self.refresh)
        self.table = QTableWidget(0, len(COLUMNS), self)
        self.table.setObjectName("historyTable")
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.ExtendedSelection)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.setIconSize(QSize(72, 54))
        self.table.verticalHeader().setDefaultSectionSize(62)
        self.table.verticalHeader().setVisible(False)
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        for column in (COLUMNS.index("decision"), COLUMNS.index("label")):
            header.setSectionResizeMode(column, QHeaderView.ResizeMode.Stretch)
        self.table.setWordWrap(True)
        self.table.itemSelectionChanged.connect(self._selection_changed)
        self.table.cellDoubleClicked.connect(lambda _row, _col: self.open_selected())
        self.open_button = make_button("historyOpen", "", self)
        self.open_button.clicked.connect(self.open_selected)
        self.compare_button = make_button("historyCompare", "", self)
        self.compare_button.clicked.connect(self.compare_selected)
        self.frames_button = make_button("historyFrames", "", self)
        self.frames_button.clicked.connect(self.toggle_selected_frames)
        self.legend = QLabel(self)
        self.legend.setObjectName("historyLegend")
        self.legend.setWordWrap(True)
        self.back_button = make_button("historyBack", "", self)
        self.back_button.clicked.connect(self.show_list)
        self.count = QLabel(self)
        self.count.setObjectName("historyCount")
        self.message = MessageBar("historyMessage", self)
        self.export_bar = CaptureExportBar(ctx, self.message, self)
        self.detail = CaptureView(ctx.tr, "historyDetail", parent=self)
        self.compare = CompareView(ctx.tr, self)

        filters = QHBoxLayout()
        for widget in (self.patient_filter, self.period, self.decision, self.review):
            filters.addWidget(widget, 1)
        filters.addWidget(self.search_button)
        list_page = QWidget(self)
        list_layout = QVBoxLayout(list_page)
        list_layout.setContentsMargins(0, 0, 0, 0)
        list_layout.addLayout(filters)
        list_layout.addWidget(self.table, 1)
        list_layout.addWidget(self.legend)
        actions = QHBoxLayout()
        actions.addWidget(self.count, 1)
        actions.addWidget(self.frames_button)
        actions.addWidget(self.open_button)
        actions.addWidget(self.compare_button)
        list_layout.addLayout(actions)
        list_layout.addWidget(self.export_bar)
        self.pages = QStackedWidget(self)
        self.pages.addWidget(list_page)
        self.pages.addWidget(self.detail)
        self.pages.addWidget(self.compare)
        top = QHBoxLayout()
        top.addWidget(self.title, 1)
        top.addWidget(self.back_button)
        layout = QVBoxLayout(self)
        layout.addLayout(top)
        layout.addWidget(self.pages, 1)
        layout.addWidget(self.message)
        self._selection_changed()
        self.show_list()

    # -- texts ----------------------------------------------------------------------------

    def retranslate(self) -> None:
        """See :meth:`Screen.retranslate`."""
        tr = self.ctx.tr
        self.title.setText(tr("ui.history.title"))
        self.patient_filter.setPlaceholderText(tr("ui.history.patient"))
        name_control(self.patient_filter, tr("ui.history.patient"))
        self._fill_combo(self.period, [(tr(f"ui.history.period.{p}"), p) for p, _ in PERIODS],
                         tr("ui.history.period"))
        self._fill_combo(self.decision, [(tr("ui.history.any_decision"), "")]
                         + [(decision_words(tr, d), d) for d in DECISIONS],
                         tr("ui.history.decision"))
        self._fill_combo(self.review, [(tr("ui.history.any_review"), ""),
                                       (tr("ui.review_state.unreviewed"), "unreviewed"),
                                       (tr("ui.review_state.reviewed"), "reviewed")],
                         tr("ui.history.review"))
        set_button_text(self.search_button, tr("ui.history.search"))
        set_button_text(self.open_button, tr("ui.history.open"))
        set_button_text(self.compare_button, tr("ui.history.compare"),
                        tr("ui.history.compare_help"))
        set_button_text(self.back_button, tr("ui.history.back"))
        self.legend.setText(legend_text(tr))
        self.export_bar.retranslate()
        self._update_frames_button()
        self.table.setHorizontalHeaderLabels([tr(f"ui.history.col.{c}") for c in COLUMNS])
        name_control(self.table, tr("ui.history.title"))
        self._fill_table()
        self.detail.retranslate()
        self.compare.retranslate()

    @staticmethod
    def _fill_combo(combo: QComboBox, items: list[tuple[str, str]], name: str) -> None:
        current = combo.currentData()
        combo.clear()
        for label, data in items:
            combo.addItem(label, data)
        combo.setCurrentIndex(max(0, combo.findData(current)) if current is not None else 0)
        name_control(combo, name)

    # -- loading --------------------------------------------------------------------------

    def refresh(self) -> None:
        """Query the history with the current filters (in the data thread)."""
        if self.ctx.service is None or self.ctx.session is None:
            return
        service, session = self.ctx.service, self.ctx.session
        pseudonym = self.patient_filter.text().strip()
        days = dict(PERIODS).get(self.period.currentData() or "all")
        since = None
        if days is not None:
            midnight = dt.datetime.now().astimezone().replace(hour=0, minute=0, second=0,
                                                              microsecond=0)
            since = midnight - dt.timedelta(days=days)
        decision = self.decision.currentData() or None
        review = ReviewState(self.review.currentData()) if self.review.currentData() else None

        def load() -> tuple[list[CaptureSummary], dict[int, str]]:
            patient_id = None
            if pseudonym:
                patient = service.find_patient(session, pseudonym)
                if patient is None:
                    return [], {}
                patient_id = patient.id
            rows = service.history(session, patient_id=patient_id, since=since,
                                   decision=decision, review_state=review)
            return rows, service.operator_names(session)

        self.message.clear_message()
        self.ctx.run_data(load, self._loaded, self.message.error)

    def _loaded(self, result: tuple[list[CaptureSummary], dict[int, str]]) -> None:
        self.rows, self.names = result
        self.entries = group_history(self.rows)
        self._fill_table()
        self._load_thumbnails()

    def _load_thumbnails(self) -> None:
        """Fetch the images of the first lines (a sequence: its main frame) not yet loaded."""
        wanted = [capture.capture_id for _entry, capture in self.lines[:THUMBNAILS]]
        missing = [i for i in wanted if i not in self.thumbs]
        if missing and self.ctx.service is not None and self.ctx.session is not None:
            service, session = self.ctx.service, self.ctx.session
            self.ctx.run_data(lambda: service.thumbnails(session, missing), self._thumbnails,
                              self.message.error)

    def _thumbnails(self, thumbs: dict[int, object]) -> None:
        for capture_id, pixels in thumbs.items():
            self.thumbs[capture_id] = QPixmap.fromImage(to_qimage(pixels))  # type: ignore[arg-type]
        self._fill_table()

    def _fill_table(self) -> None:
        selected = set(self.selected_ids())
        self.lines = []
        for entry in self.entries:
            self.lines.append((entry, entry.main))
            if entry.main.capture_id in self.expanded:
                self.lines += [(entry, f) for f in entry.frames if f is not entry.main]
        self.table.setRowCount(len(self.lines))
        for row, (entry, summary) in enumerate(self.lines):
            items = line_items(self.ctx.tr, entry, summary, expanded=self.expanded,
                               thumbs=self.thumbs)
            for column, item in enumerate(items):
                self.table.setItem(row, column, item)
        self.count.setText(self.ctx.tr("ui.history.count", count=len(self.entries)))
        if selected:
            self.select_ids(sorted(selected))
        self._update_frames_button()

    # -- selection, detail, compare -------------------------------------------------------

    def selected_ids(self) -> list[int]:
        """Capture ids of the selected lines (a sequence line: its main frame), table order."""
        rows = sorted({index.row() for index in self.table.selectionModel().selectedRows()})
        return [self.lines[r][1].capture_id for r in rows if r < len(self.lines)]

    def _selection_changed(self) -> None:
        ids = self.selected_ids()
        count = len(ids)
        self.open_button.setEnabled(count == 1)
        self.compare_button.setEnabled(count == 2)
        self.export_bar.set_capture(next((line for _entry, line in self.lines
                                          if line.capture_id == ids[0]), None)
                                    if count == 1 else None)
        self._update_frames_button()

    def select_ids(self, capture_ids: list[int]) -> None:
        """Select the lines of ``capture_ids`` (keyboard users and tests)."""
        self.table.clearSelection()
        mode = self.table.selectionMode()
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.MultiSelection)
        for row, (_entry, summary) in enumerate(self.lines):
            if summary.capture_id in capture_ids:
                self.table.selectRow(row)
        self.table.setSelectionMode(mode)

    def _selected_sequence(self) -> HistoryEntry | None:
        """The one selected line's sequence, if it is the main line of one."""
        ids = self.selected_ids()
        if len(ids) != 1:
            return None
        return next((e for e in self.entries if e.is_sequence and e.main.capture_id == ids[0]),
                    None)

    def _update_frames_button(self) -> None:
        entry = self._selected_sequence()
        shown = entry is not None and entry.main.capture_id in self.expanded
        key = "ui.history.hide_frames" if shown else "ui.history.show_frames"
        set_button_text(self.frames_button, self.ctx.tr(key),
                        self.ctx.tr("ui.history.frames_help"))
        self.frames_button.setEnabled(entry is not None)

    def toggle_frames(self, capture_id: int) -> None:
        """Show (or hide again) every frame of the sequence whose main capture is this."""
        if capture_id in self.expanded:
            self.expanded.discard(capture_id)
        else:
            self.expanded.add(capture_id)
        self._fill_table()
        self.select_ids([capture_id])
        self._load_thumbnails()

    def toggle_selected_frames(self) -> None:
        """Show or hide the frames of the selected sequence."""
        entry = self._selected_sequence()
        if entry is not None:
            self.toggle_frames(entry.main.capture_id)

    def open_selected(self) -> None:
        """Open the selected capture."""
        ids = self.selected_ids()
        if len(ids) != 1:
            return
        service, session = self.ctx.require_service(), self.ctx.require_session()
        self.ctx.run_data(lambda: service.capture_detail(session, ids[0]), self._opened,
                          self.message.error)

    def _opened(self, detail: CaptureDetail) -> None:
        self.detail.show_detail(detail, self.names)
        self.pages.setCurrentWidget(self.detail)
        self.back_button.setVisible(True)

    def compare_selected(self) -> None:
        """Compare the two selected captures (same patient only)."""
        ids = self.selected_ids()
        if len(ids) != 2:
            return
        chosen = [r for r in self.rows if r.capture_id in ids]
        if chosen[0].patient_id != chosen[1].patient_id:
            self.message.error(self.ctx.tr("ui.compare.same_patient"))
            return
        service, session = self.ctx.require_service(), self.ctx.require_session()
        self.ctx.run_data(lambda: [service.capture_detail(session, i) for i in ids],
                          self._compared, self.message.error)

    def _compared(self, details: list[CaptureDetail]) -> None:
        self.compare.show_pair(details[0], details[1], self.names)
        self.pages.setCurrentWidget(self.compare)
        self.back_button.setVisible(True)

    def show_list(self) -> None:
        """Back to the list."""
        self.pages.setCurrentIndex(0)
        self.back_button.setVisible(False)

    # -- hooks ----------------------------------------------------------------------------

    def on_shown(self) -> None:
        """Reload the list."""
        self.refresh()

    def reset(self) -> None:
        """Forget every row, thumbnail and detail."""
        self.rows, self.names, self.thumbs = [], {}, {}
        self.entries, self.lines, self.expanded = [], [], set()
        self.patient_filter.clear()
        self.detail.show_detail(None)
        self.compare.details = None
        self.table.setRowCount(0)
        self.export_bar.reset()
        self.message.clear_message()
        self.show_list()
