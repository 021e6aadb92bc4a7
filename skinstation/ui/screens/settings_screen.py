"""Station settings (administrators): camera, light, model, sync server, thresholds, language.

The dermatoscope's field of view (mm, 0 reads "not known") gives captures their pixel size in
mm (``camera.field_of_view_mm``).

The spin boxes and combo boxes take the mouse wheel only while focused (the wheel scrolls the
page otherwise), and leaving the screen with unsaved edits asks: save, discard or stay.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from PySide6.QtWidgets import (
    QComboBox,
    QDoubleSpinBox,
    QFormLayout,
    QGridLayout,
    QGroupBox,
    QLabel,
    QLineEdit,
    QMessageBox,
    QScrollArea,
    QVBoxLayout,
    QWidget,
)

from skinstation.services.model_text import metrics_lines
from skinstation.services.models import ModelInfo
from skinstation.settings import MAX_FIELD_OF_VIEW_MM, Settings
from skinstation.ui.context import StationContext
from skinstation.ui.screens.base import Screen
from skinstation.ui.screens.operators import OperatorsBox
from skinstation.ui.widgets.common import (
    MessageBar,
    heading,
    make_button,
    name_control,
    set_button_text,
    text_or,
)
from skinstation.ui.widgets.wheel_guard import guard_wheel_in

QUALITY_FIELDS = ("min_focus", "min_brightness", "max_brightness", "max_clipped_fraction",
                  "max_glare_fraction", "min_lesion_contrast", "min_lesion_fraction",
                  "max_lesion_border_fraction")
CAMERA_SOURCES = ("auto", "simulator", "synthetic", "0", "1")
SAVE, DISCARD, STAY = "save", "discard", "stay"


def _differs(current: Any, wanted: Any) -> bool:
    if isinstance(current, float) and isinstance(wanted, float):
        return round(current, 3) != round(wanted, 3)
    return bool(current != wanted)


class SettingsScreen(Screen):
    """Edits the station settings and writes them to the settings file."""

    screen_id = "settings"
    title_key = "ui.nav.settings"

    def __init__(self, ctx: StationContext, parent: QWidget | None = None) -> None:
        super().__init__(ctx, parent)
        #: Asks what to do with unsaved edits: returns SAVE, DISCARD or STAY (tests replace it).
        self.confirm_leave: Callable[[], str] = self._ask_leave
        self._leave_to = ""
        self.model_info: ModelInfo | None = None
        self.model_error = ""
        self.title = heading("settingsTitle", self)
        self.station_box, station = self._box("stationBox")
        self.language = QComboBox(self)
        self.language.setObjectName("languageCombo")
        self.language.addItem("English", "en")
        self.language.addItem("한국어", "ko")
        self.idle = QDoubleSpinBox(self)
        self.idle.setObjectName("idleMinutes")
        self.idle.setRange(0.5, 240)
        self.idle.setDecimals(1)
        station.addRow(QLabel(self), self.language)
        station.addRow(QLabel(self), self.idle)
        self.camera_box, camera = self._box("cameraBox")
        self.source = QComboBox(self)
        self.source.setObjectName("cameraSource")
        self.source.setEditable(True)
        self.source.addItems(CAMERA_SOURCES)
        self.folder = QLineEdit(self)
        self.folder.setObjectName("simulatorFolder")
        self.port = QLineEdit(self)
        self.port.setObjectName("illuminatorPort")
        camera.addRow(QLabel(self), self.source)
        camera.addRow(QLabel(self), self.folder)
        self.field_of_view = QDoubleSpinBox(self)
        self.field_of_view.setObjectName("fieldOfView")
        self.field_of_view.setRange(0, MAX_FIELD_OF_VIEW_MM)  # 0: not known
        self.field_of_view.setDecimals(2)
        camera.addRow(QLabel(self), self.port)
        camera.addRow(QLabel(self), self.field_of_view)
        self.sync_box, sync = self._box("syncBox")
        self.engine_url = QLineEdit(self)
        self.engine_url.setObjectName("engineUrl")
        sync.addRow(QLabel(self), self.engine_url)
        self.quality_box = QGroupBox(self)
        grid = QGridLayout(self.quality_box)
        self.quality: dict[str, QDoubleSpinBox] = {}
        self.quality_labels: dict[str, QLabel] = {}
        for row, name in enumerate(QUALITY_FIELDS):
            spin = QDoubleSpinBox(self.quality_box)
            spin.setObjectName(f"quality_{name}")
            spin.setRange(0, 1000)
            spin.setDecimals(3 if "fraction" in name else 1)
            spin.setSingleStep(0.01 if "fraction" in name else 1)
            label = QLabel(self.quality_box)
            label.setBuddy(spin)
            self.quality[name], self.quality_labels[name] = spin, label
            grid.addWidget(label, row, 0)
            grid.addWidget(spin, row, 1)
        self.model_box = QGroupBox(self)
        self.model_box.setObjectName("modelBox")
        self.model_text = QLabel(self.model_box)
        self.model_text.setObjectName("modelInfo")
        self.model_text.setWordWrap(True)
        QVBoxLayout(self.model_box).addWidget(self.model_text)
        self.operators = OperatorsBox(ctx, self)
        self.save_button = make_button("saveSettings", "primary", self)
        self.save_button.clicked.connect(self.save)
        self.message = MessageBar("settingsMessage", self)
        for widget in (self.language, self.idle, self.source, self.folder, self.port,
                       self.field_of_view, self.engine_url, *self.quality.values()):
            widget.setMinimumHeight(44)

        content = QWidget(self)
        column = QVBoxLayout(content)
        for widget in (self.station_box, self.camera_box, self.sync_box, self.quality_box,
                       self.save_button, self.message, self.model_box, self.operators):
            column.addWidget(widget)
        column.addStretch(1)
        self.scroll_area = QScrollArea(self)
        self.scroll_area.setObjectName("settingsScroll")
        self.scroll_area.setWidgetResizable(True)
        self.scroll_area.setWidget(content)
        layout = QVBoxLayout(self)
        layout.addWidget(self.title)
        layout.addWidget(self.scroll_area, 1)
        guard_wheel_in(content)
        self.load_values(ctx.settings)

    def _box(self, name: str) -> tuple[QGroupBox, QFormLayout]:
        box = QGroupBox(self)
        box.setObjectName(name)
        return box, QFormLayout(box)

    @staticmethod
    def _label_row(box: QGroupBox, row: int, text: str, field: QWidget) -> None:
        form = box.layout()
        assert isinstance(form, QFormLayout)
        label = form.itemAt(row, QFormLayout.ItemRole.LabelRole).widget()
        assert isinstance(label, QLabel)
        label.setText(text)
        label.setBuddy(field)
        name_control(field, text)

    def retranslate(self) -> None:
        """See :meth:`Screen.retranslate`."""
        tr = self.ctx.tr
        self.title.setText(tr("ui.settings.title"))
        self.station_box.setTitle(tr("ui.settings.station"))
        self._label_row(self.station_box, 0, tr("ui.settings.language"), self.language)
        self._label_row(self.station_box, 1, tr("ui.settings.idle"), self.idle)
        self.camera_box.setTitle(tr("ui.settings.camera"))
        self._label_row(self.camera_box, 0, tr("ui.settings.source"), self.source)
        self._label_row(self.camera_box, 1, tr("ui.settings.folder"), self.folder)
        self._label_row(self.camera_box, 2, tr("ui.settings.port"), self.port)
        self._label_row(self.camera_box, 3, tr("ui.settings.field_of_view"), self.field_of_view)
        self.field_of_view.setSpecialValueText(tr("ui.settings.field_of_view_unknown"))
        self.folder.setPlaceholderText(tr("ui.settings.folder_placeholder"))
        self.port.setPlaceholderText(tr("ui.settings.port_placeholder"))
        self.sync_box.setTitle(tr("ui.settings.sync"))
        self._label_row(self.sync_box, 0, tr("ui.settings.engine_url"), self.engine_url)
        self.quality_box.setTitle(tr("ui.settings.thresholds"))
        for name, label in self.quality_labels.items():
            label.setText(tr(f"ui.settings.q.{name}"))
            name_control(self.quality[name], label.text())
        self.model_box.setTitle(tr("ui.settings.model"))
        set_button_text(self.save_button, tr("ui.settings.save"))
        self.operators.retranslate()
        self._show_model()

    def load_values(self, settings: Settings) -> None:
        """Fill the form from ``settings``."""
        self.language.setCurrentIndex(max(0, self.language.findData(settings.language)))
        self.idle.setValue(settings.idle_lock_minutes)
        self.source.setCurrentText(settings.camera.source)
        self.folder.setText(settings.camera.simulator_folder)
        self.port.setText(settings.camera.illuminator_port)
        self.field_of_view.setValue(settings.camera.field_of_view_mm or 0.0)
        self.engine_url.setText(settings.sync.engine_url)
        for name, spin in self.quality.items():
            spin.setValue(float(getattr(settings.quality, name)))

    def changes(self) -> dict[str, Any]:
        """What the form changes compared with the settings in use."""
        current = self.ctx.settings
        wanted: dict[str, Any] = {
            "language": self.language.currentData(),
            "idle_lock_minutes": round(self.idle.value(), 1),
            "camera": {"source": self.source.currentText().strip() or "auto",
                       "simulator_folder": self.folder.text().strip(),
                       "illuminator_port": self.port.text().strip(),
                       "field_of_view_mm": round(self.field_of_view.value(), 2) or None},
            "sync": {"engine_url": self.engine_url.text().strip()},
            "quality": {n: round(s.value(), s.decimals()) for n, s in self.quality.items()},
        }
        changes: dict[str, Any] = {}
        for key, value in wanted.items():
            if isinstance(value, dict):
                section = getattr(current, key)
                diff = {k: v for k, v in value.items() if _differs(getattr(section, k), v)}
                if diff:
                    changes[key] = diff
            elif getattr(current, key) != value:
                changes[key] = value
        return changes

    def save(self) -> None:
        """Apply and store the changed settings."""
        changes = self.changes()
        if not changes:
            self.message.show_message(self.ctx.tr("ui.settings.unchanged"), "info")
            return
        service, session = self.ctx.require_service(), self.ctx.require_session()
        config = self.ctx.config_file
        self.save_button.setEnabled(False)
        self.ctx.run_data(lambda: service.change_settings(session, changes, config),
                          lambda settings: self._saved(settings, changes), self._failed)

    def _saved(self, settings: Settings, changes: dict[str, Any]) -> None:
        self.save_button.setEnabled(True)
        self.ctx.apply_settings(settings)
        note = self.ctx.tr("ui.settings.saved")
        if "sync" in changes:
            note += " " + self.ctx.tr("ui.settings.restart_sync")
        self.message.show_message(note, "success")
        target, self._leave_to = self._leave_to, ""
        if target:
            self.navigate.emit(target)

    def _failed(self, message: str) -> None:
        self.save_button.setEnabled(True)
        self._leave_to = ""  # stay: the edits are still in the form
        self.message.error(message)

    # -- leaving with unsaved edits -------------------------------------------------------

    def may_leave(self, target: str) -> bool:
        """Whether the window may switch to ``target`` now; asks if edits are unsaved.

        Save stores the edits and then switches (staying, with the error, if saving fails);
        discard reloads the settings in use; stay keeps the edits and the screen.
        """
        if self.ctx.session is None or not self.changes():
            return True
        answer = self.confirm_leave()
        if answer == DISCARD:
            self.load_values(self.ctx.settings)
            return True
        if answer == SAVE:
            self._leave_to = target
            self.save()
        return False

    def _ask_leave(self) -> str:
        tr = self.ctx.tr
        box = QMessageBox(QMessageBox.Icon.Question, tr("ui.settings.unsaved_title"),
                          tr("ui.settings.unsaved"), parent=self)
        box.setObjectName("unsavedSettingsBox")
        save = box.addButton(tr("ui.settings.unsaved_save"), QMessageBox.ButtonRole.AcceptRole)
        discard = box.addButton(tr("ui.settings.unsaved_discard"),
                                QMessageBox.ButtonRole.DestructiveRole)
        stay = box.addButton(tr("ui.settings.unsaved_stay"), QMessageBox.ButtonRole.RejectRole)
        box.setDefaultButton(stay)
        box.setEscapeButton(stay)
        box.exec()
        clicked = box.clickedButton()
        return SAVE if clicked is save else DISCARD if clicked is discard else STAY

    # -- model ----------------------------------------------------------------------------

    def _load_model_info(self) -> None:
        if self.ctx.service is None:
            return
        service = self.ctx.service
        self.ctx.run_model(service.model_info, self._model_loaded, self._model_failed)

    def _model_loaded(self, info: ModelInfo) -> None:
        self.model_info, self.model_error = info, ""
        self._show_model()

    def _model_failed(self, message: str) -> None:
        self.model_info, self.model_error = None, message
        self._show_model()

    def _show_model(self) -> None:
        tr, info = self.ctx.tr, self.model_info
        if self.model_error:
            text = f"✖  {self.model_error}"
        elif info is None:
            text = tr("ui.settings.model_loading")
        else:
            source = text_or(tr, f"ui.settings.model_source.{info.source}", info.source)
            text = "\n".join([tr("ui.settings.model_line", version=info.version,
                                 source=source, created=info.created_at),
                              str(info.path), *metrics_lines(tr, info.metrics,
                                                             info.referral_threshold)])
        self.model_text.setText(text)
        self.model_text.setAccessibleName(text)

    # -- hooks ----------------------------------------------------------------------------

    def on_shown(self) -> None:
        """Reload the form, the model card figures and the accounts."""
        self.load_values(self.ctx.settings)
        self.message.clear_message()
        self._load_model_info()
        self.operators.refresh()
