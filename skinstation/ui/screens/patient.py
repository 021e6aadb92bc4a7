"""Patient and visit: find or (confirmed) create a patient, start a visit, pick the body site.

A pseudonym looked up and not found is created only when the operator confirms it: a typo
would otherwise silently become a second patient.

What is typed is checked as a pseudonym first (:mod:`skinstation.core.pseudonyms`): a name, a
date of birth, spaces or an over-long ID are refused with the reason, never cut off or sent on.
"""

from __future__ import annotations

import datetime as dt

from PySide6.QtWidgets import (
    QButtonGroup,
    QGridLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from skinstation.core.pseudonyms import PseudonymError, check_pseudonym
from skinstation.storage import Patient, Visit
from skinstation.ui.context import StationContext, VisitState
from skinstation.ui.screens.base import Screen
from skinstation.ui.screens.lesion_picker import LesionPicker
from skinstation.ui.widgets.common import (
    MessageBar,
    heading,
    make_button,
    name_control,
    set_button_text,
)

BODY_REGIONS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("head", ("scalp", "face", "ear", "neck")),
    ("trunk", ("chest", "abdomen", "back", "genital")),
    ("arms", ("upper_extremity", "hand")),
    ("legs", ("lower_extremity", "foot")),
    ("other", ("acral", "unknown")),
)
"""Body sites (HAM10000's localisation codes) grouped like a simple body map."""


class PatientScreen(Screen):
    """Find or create the patient, open a visit, choose where the lesion is."""

    screen_id = "patient"
    title_key = "ui.nav.patient"

    def __init__(self, ctx: StationContext, parent: QWidget | None = None) -> None:
        super().__init__(ctx, parent)
        self.patient: Patient | None = None
        self.created = False
        """The shown patient was created just now (not found)."""
        self.pending: str | None = None
        """A pseudonym looked up and not found: created only if the operator confirms."""
        self.title = heading("patientTitle", self)
        self.pseudonym_label = QLabel(self)
        self.pseudonym = QLineEdit(self)
        self.pseudonym.setObjectName("pseudonym")
        self.pseudonym.setMinimumHeight(44)
        self.pseudonym.returnPressed.connect(self._find)
        self.pseudonym.textEdited.connect(self._edited)
        self.pseudonym_label.setBuddy(self.pseudonym)
        self.find_button = make_button("findPatient", "primary", self)
        self.find_button.clicked.connect(self._find)
        self.create_button = make_button("createPatient", "", self)
        self.create_button.clicked.connect(self._create)
        self.create_button.setVisible(False)
        self.patient_status = QLabel(self)
        self.patient_status.setObjectName("patientStatus")
        self.patient_status.setWordWrap(True)
        self.start_button = make_button("startVisit", "primary", self)
        self.start_button.clicked.connect(self._start_visit)
        self.close_button = make_button("closeVisit", "", self)
        self.close_button.clicked.connect(self._close_visit)

        self.site_box = QGroupBox(self)
        self.site_box.setObjectName("bodySites")
        self.site_group = QButtonGroup(self)
        self.site_group.setExclusive(True)
        self.site_buttons: dict[str, QPushButton] = {}
        self.region_labels: dict[str, QLabel] = {}
        self.lesion_picker = LesionPicker(ctx, self.site_box)
        self.lesion_picker.site_picked.connect(self.select_site)
        self.lesion_picker.failed.connect(self._failed)
        self.body_map = self.lesion_picker.body_map
        sites_row = QHBoxLayout(self.site_box)
        grid = QGridLayout()
        sites_row.addLayout(grid, 1)
        sites_row.addWidget(self.body_map)
        for row, (region, sites) in enumerate(BODY_REGIONS):
            label = QLabel(self.site_box)
            label.setProperty("class", "subheading")
            self.region_labels[region] = label
            grid.addWidget(label, row, 0)
            for column, site in enumerate(sites, start=1):
                button = make_button(f"site_{site}", "", self.site_box)
                button.setCheckable(True)
                button.setProperty("site", site)
                self.site_group.addButton(button)
                self.site_buttons[site] = button
                grid.addWidget(button, row, column)
        self.site_group.buttonClicked.connect(self._site_chosen)
        self.patients_button = make_button("patientList", "", self)
        self.patients_button.clicked.connect(lambda: self.navigate.emit("patients"))
        self.capture_button = make_button("goCapture", "primary", self)
        self.capture_button.clicked.connect(lambda: self.navigate.emit("capture"))
        self.message = MessageBar("patientMessage", self)

        find_row = QHBoxLayout()
        find_row.addWidget(self.pseudonym_label)
        find_row.addWidget(self.pseudonym, 1)
        find_row.addWidget(self.find_button)
        find_row.addWidget(self.create_button)
        find_row.addWidget(self.patients_button)
        visit_row = QHBoxLayout()
        visit_row.addWidget(self.start_button)
        visit_row.addWidget(self.close_button)
        visit_row.addSpacing(24)
        visit_row.addLayout(self.lesion_picker.row, 1)
        layout = QVBoxLayout(self)
        layout.addWidget(self.title)
        layout.addLayout(find_row)
        layout.addWidget(self.patient_status)
        layout.addLayout(visit_row)
        layout.addWidget(self.site_box)
        layout.addWidget(self.capture_button)
        layout.addWidget(self.message)
        layout.addStretch(1)
        self._update_state()

    def retranslate(self) -> None:
        """See :meth:`Screen.retranslate`."""
        tr = self.ctx.tr
        self.title.setText(tr("ui.patient.title"))
        self.pseudonym_label.setText(tr("ui.patient.pseudonym"))
        name_control(self.pseudonym, tr("ui.patient.pseudonym"), tr("ui.patient.pseudonym_help"))
        self.pseudonym.setPlaceholderText(tr("ui.patient.pseudonym_placeholder"))
        set_button_text(self.find_button, tr("ui.patient.find"))
        set_button_text(self.create_button, tr("ui.patient.create"))
        set_button_text(self.start_button, tr("ui.patient.start_visit"))
        set_button_text(self.close_button, tr("ui.patient.close_visit"))
        set_button_text(self.capture_button, tr("ui.patient.go_capture"))
        set_button_text(self.patients_button, tr("ui.patients.open"), tr("ui.patients.open_help"))
        self.lesion_picker.retranslate()
        self.site_box.setTitle(tr("ui.patient.body_site"))
        for region, label in self.region_labels.items():
            label.setText(tr(f"ui.region.{region}"))
        for site, button in self.site_buttons.items():
            set_button_text(button, tr(f"ui.site.{site}"))
        self._update_state()

    def _update_state(self) -> None:
        tr, visit = self.ctx.tr, self.ctx.visit
        if visit is not None:
            status = tr("ui.patient.visit_open", pseudonym=visit.patient.pseudonym,
                        visit=visit.visit.number)
        elif self.patient is not None:
            status = tr("ui.patient.created" if self.created else "ui.patient.found",
                        pseudonym=self.patient.pseudonym)
        elif self.pending is not None:
            status = tr("ui.patient.not_found", pseudonym=self.pending)
        else:
            status = tr("ui.patient.none")
        self.patient_status.setText(status)
        self.start_button.setEnabled(self.patient is not None and visit is None)
        self.close_button.setEnabled(visit is not None)
        self.site_box.setEnabled(visit is not None)
        self.capture_button.setEnabled(visit is not None and bool(visit.body_site))
        self.lesion_picker.update_state()

    # -- actions --------------------------------------------------------------------------

    def _find(self) -> None:
        self._set_pending(None)
        if not self.pseudonym.text().strip():
            self.message.error(self.ctx.tr("ui.patient.missing"))
            return
        service, session = self.ctx.require_service(), self.ctx.require_session()
        try:
            pseudonym = check_pseudonym(self.pseudonym.text(),
                                        service.database.settings.pseudonym_pattern)
        except PseudonymError as error:
            self._refuse(error)
            return
        self.find_button.setEnabled(False)
        self.ctx.run_data(lambda: service.find_patient(session, pseudonym),
                          lambda patient: self._looked_up(pseudonym, patient), self._failed)

    def _refuse(self, error: PseudonymError) -> None:
        """Say why the entry is no pseudonym; forget the patient shown (no visit is open)."""
        if self.ctx.visit is None:
            self.patient, self.created = None, False
        self.message.error(self.ctx.tr(f"ui.patient.refused.{error.reason}", **error.values))
        self._update_state()
        self.pseudonym.setFocus()

    def _looked_up(self, pseudonym: str, patient: Patient | None) -> None:
        if patient is not None:
            self._found(patient)
            return
        self.find_button.setEnabled(True)
        if self.ctx.visit is not None:
            self.message.show_message(self.ctx.tr("ui.patient.close_first"), "warning")
            return
        self.patient, self.created = None, False
        self._set_pending(pseudonym)
        self.message.show_message(self.ctx.tr("ui.patient.confirm_create", pseudonym=pseudonym),
                                  "warning")
        self._update_state()
        self.create_button.setFocus()

    def _set_pending(self, pseudonym: str | None) -> None:
        self.pending = pseudonym
        self.create_button.setVisible(pseudonym is not None)
        self.create_button.setEnabled(pseudonym is not None)

    def _edited(self, _text: str) -> None:
        """A different ID was typed: the offer to create the one looked up is withdrawn."""
        if self.pending is not None:
            self._set_pending(None)
            self.message.clear_message()
            self._update_state()

    def _create(self) -> None:
        pseudonym = self.pending
        if pseudonym is None:
            return
        service, session = self.ctx.require_service(), self.ctx.require_session()
        self.create_button.setEnabled(False)
        self.ctx.run_data(lambda: service.create_patient(session, pseudonym),
                          lambda patient: self._found(patient, created=True), self._failed)

    def _found(self, patient: Patient, created: bool = False) -> None:
        self.find_button.setEnabled(True)
        self._set_pending(None)
        if self.ctx.visit is not None and self.ctx.visit.patient.id != patient.id:
            self.message.show_message(self.ctx.tr("ui.patient.close_first"), "warning")
            return
        self.patient, self.created = patient, created
        self.message.clear_message()
        self._update_state()
        self.start_button.setFocus()

    def _start_visit(self) -> None:
        if self.patient is None:
            return
        service, session = self.ctx.require_service(), self.ctx.require_session()
        patient_id = self.patient.id
        self.start_button.setEnabled(False)
        self.ctx.run_data(lambda: service.start_visit(session, patient_id),
                          self._visit_started, self._failed)

    def _visit_started(self, visit: Visit) -> None:
        assert self.patient is not None
        self.ctx.set_visit(VisitState(self.patient, visit, "", dt.datetime.now(dt.UTC)))
        self.site_group.setExclusive(False)
        for button in self.site_buttons.values():
            button.setChecked(False)
        self.site_group.setExclusive(True)
        self.lesion_picker.load(self.patient.id)
        self.message.show_message(self.ctx.tr("ui.patient.visit_started"), "success")
        self._update_state()

    def _site_chosen(self, button: QPushButton) -> None:
        if self.ctx.visit is not None:
            self.ctx.visit.body_site = str(button.property("site"))
            self.lesion_picker.show_site(self.ctx.visit.body_site)
            self.ctx.visit_changed.emit(self.ctx.visit)
        self._update_state()

    def select_site(self, site: str) -> None:
        """Choose a body site (as a click on its button would)."""
        button = self.site_buttons[site]
        button.setChecked(True)
        self._site_chosen(button)

    def _close_visit(self) -> None:
        visit = self.ctx.visit
        if visit is None:
            return
        service, session = self.ctx.require_service(), self.ctx.require_session()
        self.ctx.run_data(lambda: service.close_visit(session, visit.visit.id),
                          self._visit_closed, self._failed)

    def _visit_closed(self, _visit: Visit) -> None:
        self.ctx.set_visit(None)
        self.lesion_picker.load(None)
        self.patient, self.created = None, False
        self.pseudonym.clear()
        self.message.show_message(self.ctx.tr("ui.patient.visit_closed"), "success")
        self._update_state()

    def _failed(self, message: str) -> None:
        self.find_button.setEnabled(True)
        self.create_button.setEnabled(self.pending is not None)
        self.message.error(message)
        self._update_state()

    def on_shown(self) -> None:
        """Focus the pseudonym field when no visit is open."""
        self._update_state()
        if self.ctx.visit is None:
            self.pseudonym.setFocus()

    def open_patient(self, pseudonym: str) -> None:
        """Look up ``pseudonym`` as typed and found (the patient list's "Open")."""
        self.pseudonym.setText(pseudonym)
        self._find()

    def reset(self) -> None:
        """Forget the patient."""
        self.patient, self.created = None, False
        self.lesion_picker.load(None)
        self._set_pending(None)
        self.pseudonym.clear()
        self.message.clear_message()
        self._update_state()
