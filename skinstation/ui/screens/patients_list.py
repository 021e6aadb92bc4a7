"""The patient list: search, last visit, open referrals, lesions; demographics; open a patient.

Opened from the Patient screen. Choosing a row and "Open" looks the patient up on the Patient
screen exactly as typing the pseudonym and "Find" would.
"""

from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QAbstractItemView,
    QComboBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QSpinBox,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from skinstation.services.lesions import LesionService
from skinstation.services.report import local_time
from skinstation.storage.lesions import Demographics, PatientRow
from skinstation.ui.context import StationContext
from skinstation.ui.screens.base import Screen
from skinstation.ui.widgets.common import (
    MessageBar,
    heading,
    make_button,
    name_control,
    set_button_text,
)

COLUMNS = ("pseudonym", "last_visit", "open_referrals", "lesions", "sex", "birth_year",
           "fitzpatrick")
SEXES = ("female", "male", "other", "unknown")
ROMAN = ("I", "II", "III", "IV", "V", "VI")


class PatientsListScreen(Screen):
    """A searchable table of patients, their demographics, and "Open".

    Signals:
        open_patient: The pseudonym to open on the Patient screen.
    """

    screen_id = "patients"
    title_key = "ui.nav.patients"
    open_patient = Signal(str)

    def __init__(self, ctx: StationContext, parent: QWidget | None = None) -> None:
        super().__init__(ctx, parent)
        self.rows: list[PatientRow] = []
        self.title = heading("patientsTitle", self)
        self.search_label = QLabel(self)
        self.search = QLineEdit(self)
        self.search.setObjectName("patientSearch")
        self.search.textChanged.connect(lambda _text: self.refresh())
        self.search_label.setBuddy(self.search)
        self.table = QTableWidget(0, len(COLUMNS), self)
        self.table.setObjectName("patientTable")
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.horizontalHeader().setSectionResizeMode(
            QHeaderView.ResizeMode.ResizeToContents)
        self.table.horizontalHeader().setStretchLastSection(True)
        self.table.itemSelectionChanged.connect(self._selected)
        self.table.cellDoubleClicked.connect(lambda _row, _column: self._open())
        self.open_button = make_button("openPatient", "primary", self)
        self.open_button.clicked.connect(self._open)
        self.demographics_label = QLabel(self)
        self.demographics_label.setProperty("class", "subheading")
        self.sex_label, self.year_label, self.type_label = QLabel(self), QLabel(self), QLabel(self)
        self.sex = QComboBox(self)
        self.sex.setObjectName("sex")
        self.birth_year = QSpinBox(self)
        self.birth_year.setObjectName("birthYear")
        self.birth_year.setRange(1899, 2100)
        self.birth_year.setMinimumWidth(110)
        self.fitzpatrick = QComboBox(self)
        self.fitzpatrick.setObjectName("fitzpatrick")
        for label, field in ((self.sex_label, self.sex), (self.year_label, self.birth_year),
                             (self.type_label, self.fitzpatrick)):
            label.setBuddy(field)
        self.save_button = make_button("saveDemographics", "", self)
        self.save_button.clicked.connect(self._save)
        self.message = MessageBar("patientsMessage", self)

        search_row = QHBoxLayout()
        search_row.addWidget(self.search_label)
        search_row.addWidget(self.search, 1)
        search_row.addWidget(self.open_button)
        fields = QHBoxLayout()
        for label, field in ((self.sex_label, self.sex), (self.year_label, self.birth_year),
                             (self.type_label, self.fitzpatrick)):
            fields.addWidget(label)
            fields.addWidget(field)
        fields.addStretch(1)
        demographics_row = QHBoxLayout()
        demographics_row.addWidget(self.demographics_label, 1)
        demographics_row.addWidget(self.save_button)
        layout = QVBoxLayout(self)
        layout.addWidget(self.title)
        layout.addLayout(search_row)
        layout.addWidget(self.table, 1)
        layout.addLayout(demographics_row)
        layout.addLayout(fields)
        layout.addWidget(self.message)
        self._update_state()

    def retranslate(self) -> None:
        """See :meth:`Screen.retranslate`."""
        tr = self.ctx.tr
        self.title.setText(tr("ui.patients.title"))
        self.search_label.setText(tr("ui.patients.search"))
        self.search.setPlaceholderText(tr("ui.patients.search_placeholder"))
        set_button_text(self.open_button, tr("ui.patients.open_patient"))
        self.table.setHorizontalHeaderLabels([tr(f"ui.patients.column.{c}") for c in COLUMNS])
        self.demographics_label.setText(tr("ui.patients.demographics"))
        self.sex_label.setText(tr("ui.patients.column.sex"))
        self.year_label.setText(tr("ui.patients.column.birth_year"))
        self.type_label.setText(tr("ui.patients.column.fitzpatrick"))
        self.birth_year.setSpecialValueText(tr("ui.patients.not_recorded"))
        for combo, values in ((self.sex, SEXES), (self.fitzpatrick, range(1, 7))):
            current = combo.currentData()
            combo.clear()
            combo.addItem(tr("ui.patients.not_recorded"), None)
            for value in values:
                combo.addItem(self._value_text(value), value)
            combo.setCurrentIndex(max(0, combo.findData(current)))
        set_button_text(self.save_button, tr("ui.patients.save"))
        for control, key in ((self.search, "ui.patients.search"),
                             (self.table, "ui.patients.title"),
                             (self.sex, "ui.patients.column.sex"),
                             (self.birth_year, "ui.patients.column.birth_year"),
                             (self.fitzpatrick, "ui.patients.column.fitzpatrick")):
            name_control(control, tr(key))
        self._fill()

    def _value_text(self, value: str | int | None) -> str:
        if value is None:
            return "—"
        if isinstance(value, int):
            return ROMAN[value - 1]
        return self.ctx.tr(f"ui.patients.sex.{value}")

    # -- data -----------------------------------------------------------------------------

    def on_shown(self) -> None:
        """Read the list afresh."""
        self.refresh()
        self.search.setFocus()

    def refresh(self) -> None:
        """Read the patients matching the search."""
        if self.ctx.service is None or self.ctx.session is None:
            return
        service, session, search = self.ctx.service, self.ctx.session, self.search.text().strip()
        self.ctx.run_data(lambda: LesionService(service).patient_list(session, search),
                          self._listed, self.message.error)

    def _listed(self, rows: list[PatientRow]) -> None:
        self.rows = list(rows)
        self._fill()

    def _fill(self) -> None:
        tr = self.ctx.tr
        selected = self.selected()
        self.table.setRowCount(len(self.rows))
        for number, row in enumerate(self.rows):
            last = local_time(row.last_visit_at) if row.last_visit_at else tr("ui.patients.never")
            cells = (row.pseudonym, last,
                     str(row.open_referrals), str(row.lesions), self._value_text(row.sex),
                     str(row.birth_year) if row.birth_year else "—",
                     self._value_text(row.fitzpatrick))
            for column, cell in enumerate(cells):
                item = QTableWidgetItem(cell)
                item.setData(Qt.ItemDataRole.UserRole, row.patient_id)
                self.table.setItem(number, column, item)
            if selected is not None and row.patient_id == selected.patient_id:
                self.table.selectRow(number)
        self._update_state()

    def selected(self) -> PatientRow | None:
        """The chosen row's patient."""
        rows = self.table.selectionModel().selectedRows()
        return self.rows[rows[0].row()] if rows and rows[0].row() < len(self.rows) else None

    def _selected(self) -> None:
        row = self.selected()
        if row is not None:
            self.sex.setCurrentIndex(max(0, self.sex.findData(row.sex)))
            self.birth_year.setValue(row.birth_year or self.birth_year.minimum())
            self.fitzpatrick.setCurrentIndex(max(0, self.fitzpatrick.findData(row.fitzpatrick)))
        self._update_state()

    def _update_state(self) -> None:
        chosen = self.selected() is not None
        for widget in (self.open_button, self.sex, self.birth_year, self.fitzpatrick,
                       self.save_button):
            widget.setEnabled(chosen)

    def _open(self) -> None:
        row = self.selected()
        if row is not None:
            self.open_patient.emit(row.pseudonym)

    def _save(self) -> None:
        row = self.selected()
        if row is None:
            return
        service, session = self.ctx.require_service(), self.ctx.require_session()
        year = self.birth_year.value()
        values = (self.sex.currentData(), None if year == self.birth_year.minimum() else year,
                  self.fitzpatrick.currentData())
        self.ctx.run_data(
            lambda: LesionService(service).set_demographics(session, row.patient_id, *values),
            self._saved, self.message.error)

    def _saved(self, _demographics: Demographics) -> None:
        self.message.show_message(self.ctx.tr("ui.patients.saved"), "success")
        self.refresh()

    def reset(self) -> None:
        """Forget the list (logout)."""
        self.rows = []
        self.search.clear()
        self.table.setRowCount(0)
        self.message.clear_message()
