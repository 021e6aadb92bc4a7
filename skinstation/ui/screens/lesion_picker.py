"""The patient screen's "which lesion?": the body map, the candidates at a site, "New lesion".

A click on the body map picks the site and a point; the candidates are the patient's lesions
at that site (:meth:`~skinstation.services.lesions.LesionService.lesions_of`); "New lesion"
creates one at the point. The chosen lesion is kept in the visit
(:attr:`~skinstation.ui.context.VisitState.lesion_id`) and saved with the captures.
"""

from __future__ import annotations

from PySide6.QtCore import Signal
from PySide6.QtWidgets import QComboBox, QHBoxLayout, QLabel, QWidget

from skinstation.services.lesions import LesionService
from skinstation.storage.lesions import LesionInfo
from skinstation.ui.context import StationContext
from skinstation.ui.widgets.body_map import BodyMap, MapLesion
from skinstation.ui.widgets.common import make_button, name_control, set_button_text

SITE_CENTRE = (0.5, 0.5)
"""The point a new lesion gets when its site was chosen from the buttons (not the map)."""


class LesionPicker(QWidget):
    """The body map and the lesion choice of the open visit.

    Signals:
        site_picked: A body-site code clicked on the map (the screen selects its button).
        failed: A translated message when reading or creating lesions failed.
    """

    site_picked = Signal(str)
    failed = Signal(str)

    def __init__(self, ctx: StationContext, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.ctx = ctx
        self.lesions: list[LesionInfo] = []
        """The patient's lesions, oldest first (numbered 1.. on the map)."""
        self.point: tuple[str, str, float, float] | None = None
        """The map point of the chosen site: ``(view, side, x, y)``."""
        self.body_map = BodyMap(self)
        self.body_map.picked.connect(self._picked)
        self.body_map.lesion_clicked.connect(self.choose_lesion)
        self.lesion_label = QLabel(self)
        self.lesion_choice = QComboBox(self)
        self.lesion_choice.setObjectName("lesionChoice")
        self.lesion_choice.setMinimumContentsLength(18)
        self.lesion_choice.currentIndexChanged.connect(self._choice_changed)
        self.lesion_label.setBuddy(self.lesion_choice)
        self.new_lesion_button = make_button("newLesion", "", self)
        self.new_lesion_button.clicked.connect(self._new_lesion)
        row = QHBoxLayout()
        row.addWidget(self.lesion_label)
        row.addWidget(self.lesion_choice, 1)
        row.addWidget(self.new_lesion_button)
        self.row = row

    def retranslate(self) -> None:
        """Texts in the current language."""
        tr = self.ctx.tr
        self.lesion_label.setText(tr("ui.lesion.which"))
        name_control(self.lesion_choice, tr("ui.lesion.which"))
        set_button_text(self.new_lesion_button, tr("ui.lesion.new"), tr("ui.lesion.new_help"))
        self.body_map.set_view_titles(tr("ui.lesion.front"), tr("ui.lesion.back"))
        self._fill_choice()

    def number_of(self, lesion_id: int) -> int:
        """A lesion's number on the map (1 for the patient's first)."""
        return next(i for i, lesion in enumerate(self.lesions, 1) if lesion.id == lesion_id)

    def describe(self, lesion: LesionInfo) -> str:
        """``Lesion 2 · Back, left`` (and its label)."""
        tr = self.ctx.tr
        text = tr("ui.lesion.item", number=self.number_of(lesion.id),
                  site=tr(f"ui.site.{lesion.body_site}"), side=tr(f"ui.lesion.side.{lesion.side}"))
        return f"{text} · {lesion.label}" if lesion.label else text

    # -- state ----------------------------------------------------------------------------

    def load(self, patient_id: int | None) -> None:
        """Read the patient's lesions (None: clear)."""
        self.point = None
        self.body_map.set_site(None)
        if patient_id is None:
            self._loaded([])
            return
        service, session = self.ctx.require_service(), self.ctx.require_session()
        self.ctx.run_data(lambda: LesionService(service).lesions_of(session, patient_id),
                          self._loaded, self.failed.emit)

    def _loaded(self, lesions: list[LesionInfo]) -> None:
        self.lesions = list(lesions)
        self.body_map.set_lesions([MapLesion(lesion.id, number, lesion.view, lesion.x, lesion.y)
                                   for number, lesion in enumerate(self.lesions, 1)])
        self._fill_choice()

    def show_site(self, site: str) -> None:
        """The site was chosen (button or map): offer that site's lesions."""
        if self.point is None or self.body_map.site != site:
            self.point = None
            self.body_map.set_site(site)
        visit = self.ctx.visit
        if visit is not None:
            current = next((item for item in self.lesions if item.id == visit.lesion_id), None)
            if current is not None and current.body_site != site:
                visit.lesion_id = None
        self._fill_choice()

    def _picked(self, site: str, view: str, side: str, x: float, y: float) -> None:
        self.point = (view, side, x, y)
        self.site_picked.emit(site)

    def choose_lesion(self, lesion_id: int) -> None:
        """Choose a lesion (its dot was clicked): its site becomes the visit's."""
        lesion = next((item for item in self.lesions if item.id == lesion_id), None)
        if lesion is None or self.ctx.visit is None:
            return
        self.point = (lesion.view, lesion.side, lesion.x, lesion.y)
        self.body_map.set_site(lesion.body_site, (lesion.view, lesion.x, lesion.y))
        self.ctx.visit.lesion_id = lesion.id
        self.site_picked.emit(lesion.body_site)  # keeps the lesion: it is at that site
        self._fill_choice()

    def _fill_choice(self) -> None:
        visit = self.ctx.visit
        site = visit.body_site if visit is not None else ""
        chosen = visit.lesion_id if visit is not None else None
        self.lesion_choice.blockSignals(True)
        self.lesion_choice.clear()
        self.lesion_choice.addItem(self.ctx.tr("ui.lesion.none"), None)
        for lesion in self.lesions:
            if lesion.body_site == site:
                self.lesion_choice.addItem(self.describe(lesion), lesion.id)
        index = self.lesion_choice.findData(chosen) if chosen is not None else 0
        self.lesion_choice.setCurrentIndex(max(0, index))
        self.lesion_choice.blockSignals(False)
        self.body_map.set_selected(chosen)
        self.update_state()

    def update_state(self) -> None:
        """Enable what the open visit allows."""
        visit = self.ctx.visit
        has_site = visit is not None and bool(visit.body_site)
        self.body_map.setEnabled(visit is not None)
        self.lesion_choice.setEnabled(has_site)
        self.new_lesion_button.setEnabled(has_site)

    def _choice_changed(self, _index: int) -> None:
        if self.ctx.visit is not None:
            self.ctx.visit.lesion_id = self.lesion_choice.currentData()
            self.body_map.set_selected(self.ctx.visit.lesion_id)

    def _new_lesion(self) -> None:
        visit = self.ctx.visit
        if visit is None or not visit.body_site:
            return
        view, side, x, y = self.point or ("back" if visit.body_site == "back" else "front",
                                          "midline", *SITE_CENTRE)
        service, session = self.ctx.require_service(), self.ctx.require_session()
        patient_id, site = visit.patient.id, visit.body_site
        self.new_lesion_button.setEnabled(False)

        def create() -> tuple[LesionInfo, list[LesionInfo]]:
            lesions = LesionService(service)
            lesion = lesions.create_lesion(session, patient_id, site, view, side, x, y)
            return lesion, lesions.lesions_of(session, patient_id)

        def failed(message: str) -> None:
            self.update_state()
            self.failed.emit(message)

        self.ctx.run_data(create, self._created, failed)

    def _created(self, result: tuple[LesionInfo, list[LesionInfo]]) -> None:
        lesion, lesions = result
        if self.ctx.visit is not None:
            self.ctx.visit.lesion_id = lesion.id
        self._loaded(lesions)
