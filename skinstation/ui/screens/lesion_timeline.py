"""A lesion over time: its captures in date order, and the measured change between any two.

The patient's lesions are those of the open visit's patient (or the one chosen last). Two
lines chosen and "Compare" show the pair registered onto the earlier capture, side by side and
overlaid (opacity slider), with area, diameter and colour before, after and their change,
flagged where :mod:`skinstation.inference.lesion_change` counts it as changed
(:func:`skinstation.services.lesion_compare.compare_captures` does the work). Sizes are in mm
when both captures were taken with the dermatoscope's field of view set, else in pixels, and a
line under the table says how to get mm. Under the list,
the lesion's overview photo with the lesion marked on it
(:class:`~skinstation.ui.widgets.lesion_overview.LesionOverviewPanel`).
"""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QSize, Qt
from PySide6.QtWidgets import (
    QAbstractItemView,
    QComboBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QSlider,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from skinstation.services.lesion_compare import PX, LesionComparison, compare_captures
from skinstation.services.lesions import LesionService
from skinstation.services.report import lesion_report, local_time
from skinstation.storage.lesions import LesionInfo
from skinstation.storage.queries import CaptureSummary
from skinstation.ui.context import StationContext
from skinstation.ui.screens.base import Screen
from skinstation.ui.widgets.common import (
    MessageBar,
    heading,
    make_button,
    name_control,
    set_button_text,
)
from skinstation.ui.widgets.history_lines import decision_words
from skinstation.ui.widgets.image_view import ImageView
from skinstation.ui.widgets.lesion_overview import LesionOverviewPanel

COLUMNS = ("time", "visit", "decision", "review")
MEASURE_COLUMNS = ("measure", "before", "after", "change")
CHANGED_MARK = "▲"


class LesionTimelineScreen(Screen):
    """One lesion's captures in date order; compare two; write the lesion's report."""

    screen_id = "lesions"
    title_key = "ui.nav.lesions"

    def __init__(self, ctx: StationContext, parent: QWidget | None = None) -> None:
        super().__init__(ctx, parent)
        self.patient_id: int | None = None
        self.lesions: list[LesionInfo] = []
        self.timeline: list[CaptureSummary] = []
        self.comparison: LesionComparison | None = None
        self.report_path: Path | None = None
        self.title = heading("lesionsTitle", self)
        self.lesion_label = QLabel(self)
        self.lesion_choice = QComboBox(self)
        self.lesion_choice.setObjectName("timelineLesion")
        self.lesion_choice.currentIndexChanged.connect(lambda _i: self._load_timeline())
        self.lesion_label.setBuddy(self.lesion_choice)
        self.table = QTableWidget(0, len(COLUMNS), self)
        self.table.setObjectName("timelineTable")
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.MultiSelection)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.horizontalHeader().setSectionResizeMode(
            QHeaderView.ResizeMode.ResizeToContents)
        self.table.horizontalHeader().setSectionResizeMode(
            COLUMNS.index("decision"), QHeaderView.ResizeMode.Stretch)
        self.table.verticalHeader().setVisible(False)
        self.table.itemSelectionChanged.connect(self._update_state)
        self.compare_button = make_button("compareCaptures", "primary", self)
        self.compare_button.clicked.connect(self.compare_selected)
        self.report_button = make_button("lesionReport", "", self)
        self.report_button.clicked.connect(self.write_report)
        self.side_view = ImageView("compareSideBySide", QSize(220, 110), self)
        self.overlay_view = ImageView("compareOverlay", QSize(220, 110), self)
        self.opacity_label = QLabel(self)
        self.opacity = QSlider(Qt.Orientation.Horizontal, self)
        self.opacity.setObjectName("overlayOpacity")
        self.opacity.setRange(0, 100)
        self.opacity.setValue(50)
        self.opacity.valueChanged.connect(lambda _v: self._show_overlay())
        self.opacity_label.setBuddy(self.opacity)
        self.measures = QTableWidget(0, len(MEASURE_COLUMNS), self)
        self.measures.setObjectName("changeTable")
        self.measures.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.measures.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Stretch)
        self.measures.verticalHeader().setVisible(False)
        self.measures.setFixedHeight(136)
        self.change_summary = QLabel(self)
        self.change_summary.setObjectName("changeSummary")
        self.change_summary.setWordWrap(True)
        self.units_note = QLabel(self)
        self.units_note.setObjectName("compareUnits")
        self.units_note.setWordWrap(True)
        self.units_note.setVisible(False)
        self.message = MessageBar("lesionsMessage", self)
        self.overview = LesionOverviewPanel(ctx, self.message, self)
        self.overview.changed.connect(self._overview_changed)

        chooser = QHBoxLayout()
        chooser.addWidget(self.lesion_label)
        chooser.addWidget(self.lesion_choice, 1)
        buttons = QHBoxLayout()
        buttons.addWidget(self.compare_button)
        buttons.addWidget(self.report_button)
        buttons.addStretch(1)
        left = QVBoxLayout()
        left.addLayout(chooser)
        left.addWidget(self.table, 1)
        left.addWidget(self.overview, 1)
        left.addLayout(buttons)
        slider = QHBoxLayout()
        slider.addWidget(self.opacity_label)
        slider.addWidget(self.opacity, 1)
        right = QVBoxLayout()
        right.addWidget(self.side_view, 1)
        right.addWidget(self.overlay_view, 1)
        right.addLayout(slider)
        right.addWidget(self.measures)
        right.addWidget(self.units_note)
        right.addWidget(self.change_summary)
        columns = QHBoxLayout()
        columns.addLayout(left, 1)
        columns.addLayout(right, 1)
        layout = QVBoxLayout(self)
        layout.addWidget(self.title)
        layout.addLayout(columns, 1)
        layout.addWidget(self.message)
        self._update_state()

    def retranslate(self) -> None:
        """See :meth:`Screen.retranslate`."""
        tr = self.ctx.tr
        self.title.setText(tr("ui.lesions.title"))
        self.lesion_label.setText(tr("ui.lesions.lesion"))
        set_button_text(self.compare_button, tr("ui.lesions.compare"),
                        tr("ui.lesions.compare_help"))
        set_button_text(self.report_button, tr("ui.lesions.report"))
        self.opacity_label.setText(tr("ui.lesions.opacity"))
        self.table.setHorizontalHeaderLabels([tr(f"ui.lesions.column.{c}") for c in COLUMNS])
        self.measures.setHorizontalHeaderLabels(
            [tr(f"ui.lesions.measure_column.{c}") for c in MEASURE_COLUMNS])
        self.side_view.set_placeholder(tr("ui.lesions.pick_two"))
        self.overlay_view.set_placeholder(tr("ui.lesions.overlay"))
        for control, key in ((self.lesion_choice, "ui.lesions.lesion"),
                             (self.table, "ui.lesions.title"),
                             (self.opacity, "ui.lesions.opacity"),
                             (self.measures, "ui.lesions.compare")):
            name_control(control, tr(key))
        self._fill_lesions()
        self._fill_timeline()
        self._show_comparison()
        self.overview.retranslate()

    # -- data -----------------------------------------------------------------------------

    def on_shown(self) -> None:
        """Show the open visit's patient's lesions (its chosen lesion first)."""
        visit = self.ctx.visit
        if visit is not None:
            self.show_patient(visit.patient.id, visit.lesion_id)
        elif self.patient_id is not None:
            self.show_patient(self.patient_id)

    def show_patient(self, patient_id: int, lesion_id: int | None = None) -> None:
        """Read a patient's lesions and show ``lesion_id`` (default: the first)."""
        if self.ctx.service is None or self.ctx.session is None:
            return
        self.patient_id = patient_id
        service, session = self.ctx.service, self.ctx.session
        self.ctx.run_data(lambda: LesionService(service).lesions_of(session, patient_id),
                          lambda lesions: self._lesions_read(lesions, lesion_id),
                          self.message.error)

    def _lesions_read(self, lesions: list[LesionInfo], lesion_id: int | None) -> None:
        current = lesion_id if lesion_id is not None else self.lesion_choice.currentData()
        self.lesions = list(lesions)
        self._fill_lesions(current)
        self.overview.set_patient(self.patient_id)
        self._load_timeline()

    def _fill_lesions(self, current: int | None = None) -> None:
        tr = self.ctx.tr
        current = current if current is not None else self.lesion_choice.currentData()
        self.lesion_choice.blockSignals(True)
        self.lesion_choice.clear()
        for number, lesion in enumerate(self.lesions, 1):
            text = tr("ui.lesion.item", number=number, site=tr(f"ui.site.{lesion.body_site}"),
                      side=tr(f"ui.lesion.side.{lesion.side}"))
            self.lesion_choice.addItem(text, lesion.id)
        self.lesion_choice.setCurrentIndex(max(0, self.lesion_choice.findData(current)))
        self.lesion_choice.blockSignals(False)

    def select_lesion(self, lesion_id: int) -> None:
        """Show one of the patient's lesions."""
        self.lesion_choice.setCurrentIndex(self.lesion_choice.findData(lesion_id))

    def _load_timeline(self) -> None:
        lesion_id = self.lesion_choice.currentData()
        self.comparison = None
        self._show_comparison()
        self.overview.show_lesion(next((item for item in self.lesions if item.id == lesion_id),
                                       None))
        if lesion_id is None or self.ctx.service is None or self.ctx.session is None:
            self.timeline = []
            self._fill_timeline()
            return
        service, session = self.ctx.service, self.ctx.session
        self.ctx.run_data(lambda: LesionService(service).lesion_timeline(session, lesion_id),
                          self._timeline_read, self.message.error)

    def _overview_changed(self, lesion: LesionInfo) -> None:
        self.lesions = [lesion if item.id == lesion.id else item for item in self.lesions]

    def _timeline_read(self, timeline: list[CaptureSummary]) -> None:
        self.timeline = list(timeline)
        self._fill_timeline()

    def _fill_timeline(self) -> None:
        tr = self.ctx.tr
        self.table.clearSelection()
        self.table.setRowCount(len(self.timeline))
        for row, capture in enumerate(self.timeline):
            texts = (local_time(capture.capture_time), str(capture.visit_number),
                     decision_words(tr, capture.decision, capture.referral),
                     tr(f"ui.review_state.{capture.review_state.value}"))
            for column, value in enumerate(texts):
                item = QTableWidgetItem(value)
                item.setToolTip(value)
                item.setData(Qt.ItemDataRole.UserRole, capture.capture_id)
                self.table.setItem(row, column, item)
        self._update_state()

    def selected_ids(self) -> list[int]:
        """The capture ids of the chosen lines, in timeline order."""
        rows = sorted(index.row() for index in self.table.selectionModel().selectedRows())
        return [self.timeline[row].capture_id for row in rows if row < len(self.timeline)]

    def _update_state(self) -> None:
        self.compare_button.setEnabled(len(self.selected_ids()) == 2)
        self.report_button.setEnabled(bool(self.timeline))
        self.opacity.setEnabled(self.comparison is not None)

    # -- comparison -----------------------------------------------------------------------

    def compare_selected(self) -> None:
        """Compare the two chosen captures (in the model thread)."""
        chosen = self.selected_ids()
        if len(chosen) != 2 or self.ctx.service is None or self.ctx.session is None:
            return
        service, session = self.ctx.service, self.ctx.session
        self.compare_button.setEnabled(False)
        self.message.show_message(self.ctx.tr("ui.lesions.comparing"), "info")
        self.ctx.run_model(lambda: compare_captures(service, session, chosen[0], chosen[1]),
                           self._compared, self._failed)

    def _compared(self, comparison: LesionComparison) -> None:
        self.comparison = comparison
        self.message.clear_message()
        self._show_comparison()

    def _failed(self, message: str) -> None:
        self._update_state()
        self.message.error(message)

    def _show_comparison(self) -> None:
        tr, comparison = self.ctx.tr, self.comparison
        self._update_state()
        if comparison is None:
            self.side_view.clear()
            self.overlay_view.clear()
            self.measures.setRowCount(0)
            self.change_summary.setText("")
            self.units_note.setText("")
            self.units_note.setVisible(False)
            return
        self.side_view.set_array(comparison.side_by_side())
        self.side_view.set_caption(tr("ui.lesions.pair", before=local_time(
            comparison.before_time), after=local_time(comparison.after_time)))
        self._show_overlay()
        rows = comparison.rows()
        self.measures.setRowCount(len(rows))
        for number, row in enumerate(rows):
            change = f"{CHANGED_MARK} {row.change}" if row.changed else row.change
            for column, value in enumerate((tr(row.label_key), row.before, row.after, change)):
                item = QTableWidgetItem(value)
                item.setToolTip(value)
                self.measures.setItem(number, column, item)
        flagged = [tr(row.label_key) for row in rows if row.changed]
        self.units_note.setText(tr("ui.lesions.units_px") if comparison.units == PX else "")
        self.units_note.setVisible(comparison.units == PX)
        self.change_summary.setText(
            tr("ui.lesions.changed", measures=", ".join(flagged)) if flagged
            else tr("ui.lesions.unchanged"))

    def _show_overlay(self) -> None:
        if self.comparison is not None:
            self.overlay_view.set_array(self.comparison.overlay(self.opacity.value() / 100))
            self.overlay_view.set_caption(self.ctx.tr("ui.lesions.overlay"))

    # -- report ---------------------------------------------------------------------------

    def write_report(self) -> None:
        """Write the lesion's referral report (PDF) and say where."""
        lesion_id = self.lesion_choice.currentData()
        if lesion_id is None or self.ctx.service is None or self.ctx.session is None:
            return
        service, session, language = self.ctx.service, self.ctx.session, self.ctx.language
        lesion = next(item for item in self.lesions if item.id == lesion_id)
        out = Path(self.ctx.settings.home) / "reports" / f"lesion-{lesion.uid}.pdf"
        self.report_button.setEnabled(False)
        self.ctx.run_data(lambda: lesion_report(service, session, lesion_id, out, language),
                          self._reported, self._failed)

    def _reported(self, path: Path) -> None:
        self.report_path = path
        self._update_state()
        self.message.show_message(self.ctx.tr("ui.lesions.report_written", path=str(path)),
                                  "success")

    def reset(self) -> None:
        """Forget the patient (logout)."""
        self.patient_id, self.lesions, self.timeline, self.comparison = None, [], [], None
        self.report_path = None
        self.lesion_choice.clear()
        self.table.setRowCount(0)
        self._show_comparison()
        self.overview.reset()
        self.message.clear_message()
