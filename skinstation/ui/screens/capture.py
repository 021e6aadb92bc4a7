"""Capture: live preview, illumination bands, quality indicators, still and multispectral capture.

The preview runs in the camera thread (:class:`~skinstation.ui.workers.CameraWorker`); this
screen only shows the frames it is handed. Capture by the button, the space bar or a foot
pedal (pedals are keyboard devices; :data:`PEDAL_KEYS` lists the keys they send). The keys
work from anywhere in the window while this screen is the current one (a text field keeps
its space bar); when a capture cannot be taken they say why, and a result not yet saved is
never replaced without asking (:mod:`~skinstation.ui.screens.capture_guard`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtGui import QImage, QKeySequence, QShortcut
from PySide6.QtWidgets import (
    QButtonGroup,
    QGridLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from skinstation.camera import BandFrame, Frame, QualityReport
from skinstation.services.capture import classification_band
from skinstation.services.quality_text import quality_reason, quality_reasons
from skinstation.ui.camera_worker import SourceInfo
from skinstation.ui.context import StationContext, effective_camera_settings
from skinstation.ui.errors import detail_of
from skinstation.ui.screens.base import Screen
from skinstation.ui.screens.capture_guard import (
    ConfirmReplace,
    ask_replace,
    not_ready_reason,
)
from skinstation.ui.widgets.common import MessageBar, make_button, set_button_text
from skinstation.ui.widgets.image_view import ImageView

PEDAL_KEYS = ("F12", "Ctrl+F12")
"""Keys a USB foot pedal can be set to send; each one captures like the space bar."""

QUALITY_CHECKS = ("focus", "underexposure", "overexposure", "clipping", "glare",
                  "lesion_contrast", "lesion_size", "lesion_border")


@dataclass(frozen=True)
class CaptureTaken:
    """A capture handed from the capture screen to the result screen.

    Attributes:
        frame: The frame to classify (the white-light one of a sequence).
        band: Its band name.
        requested_at: ``time.perf_counter()`` when the operator asked for it.
        sequence: Every band's frame of a multispectral sequence (None for a still).
    """

    frame: Frame
    band: str
    requested_at: float
    sequence: tuple[BandFrame, ...] | None = None


class CaptureScreen(Screen):
    """Live preview and capture controls.

    Attributes:
        has_unsaved: Tells whether a result is waiting to be saved (the window wires it to
            the result screen).
        confirm_replace: Asks what to do with that result before a new capture
            (default: a :func:`~skinstation.ui.screens.capture_guard.ask_replace` dialog).

    Signals:
        taken: A still or a sequence was captured (:class:`CaptureTaken`).
    """

    screen_id = "capture"
    title_key = "ui.nav.capture"
    taken = Signal(object)

    def __init__(self, ctx: StationContext, parent: QWidget | None = None) -> None:
        super().__init__(ctx, parent)
        self.source: SourceInfo | None = None
        self.camera_error = ""
        self.busy = False
        self.current_band = ""
        self.has_unsaved: Callable[[], bool] = lambda: False
        self.confirm_replace: ConfirmReplace = lambda: ask_replace(self.window(), ctx.tr)
        self.source_status = QLabel(self)
        self.source_status.setObjectName("sourceStatus")
        self.source_status.setWordWrap(True)
        self.visit_status = QLabel(self)
        self.visit_status.setObjectName("captureVisit")
        self.preview = ImageView("preview", parent=self)
        self.fps_label = QLabel(self)
        self.fps_label.setObjectName("fps")
        self.band_box = QGroupBox(self)
        self.band_layout = QGridLayout(self.band_box)
        self.band_group = QButtonGroup(self)
        self.band_group.setExclusive(True)
        self.band_group.buttonClicked.connect(self._band_clicked)
        self.band_buttons: dict[str, QPushButton] = {}
        self.sequence_button = make_button("sequenceButton", "", self.band_box)
        self.sequence_button.clicked.connect(self.capture_sequence)
        self.band_layout.addWidget(self.sequence_button, 0, 0, 1, 2)  # after the bands (_opened)
        self.quality_box = QGroupBox(self)
        quality_grid = QGridLayout(self.quality_box)
        self.quality_labels: dict[str, QLabel] = {}
        for index, name in enumerate(QUALITY_CHECKS):
            label = QLabel(self.quality_box)
            label.setObjectName(f"quality_{name}")
            label.setProperty("class", "qualityChip")
            self.quality_labels[name] = label
            quality_grid.addWidget(label, index // 2, index % 2)
        self.quality_summary = QLabel(self)
        self.quality_summary.setObjectName("qualitySummary")
        self.quality_summary.setWordWrap(True)
        self.quality: QualityReport | None = None
        self.capture_button = make_button("captureButton", "primary", self)
        self.capture_button.setMinimumHeight(72)
        self.capture_button.clicked.connect(self.capture)
        self.keys_hint = QLabel(self)
        self.keys_hint.setObjectName("captureKeys")
        self.keys_hint.setWordWrap(True)
        self.reconnect_button = make_button("reconnectButton", "", self)
        self.reconnect_button.clicked.connect(self.start_preview)
        self.reconnect_button.setVisible(False)
        self.next_lesion_button = make_button("nextLesionButton", "", self)  # simulator only
        self.next_lesion_button.clicked.connect(ctx.camera.next_lesion)
        self.next_lesion_button.setVisible(False)
        self.patient_button = make_button("toPatient", "", self)
        self.patient_button.clicked.connect(lambda: self.navigate.emit("patient"))
        self.message = MessageBar("captureMessage", self)

        controls = QVBoxLayout()
        controls.addWidget(self.band_box)
        controls.addWidget(self.quality_box)
        controls.addWidget(self.quality_summary)
        controls.addStretch(1)
        controls.addWidget(self.reconnect_button)
        controls.addWidget(self.next_lesion_button)
        controls.addWidget(self.patient_button)
        controls.addWidget(self.capture_button)
        controls.addWidget(self.keys_hint)
        left = QVBoxLayout()
        left.addWidget(self.source_status)
        left.addWidget(self.visit_status)
        left.addWidget(self.preview, 1)
        left.addWidget(self.fps_label)
        left.addWidget(self.message)
        layout = QHBoxLayout(self)
        layout.addLayout(left, 3)
        layout.addLayout(controls, 1)

        self.shortcuts = [QShortcut(QKeySequence(key), self) for key in ("Space", *PEDAL_KEYS)]
        for shortcut in self.shortcuts:  # on only while this screen is shown (on_shown)
            shortcut.setContext(Qt.ShortcutContext.WindowShortcut)
            shortcut.setEnabled(False)
            shortcut.activated.connect(self.capture)
        self.fps_timer = QTimer(self)
        self.fps_timer.setInterval(1000)
        self.fps_timer.timeout.connect(self._show_fps)

        camera = ctx.camera
        camera.worker.opened.connect(self._opened)
        camera.worker.frame_ready.connect(self._frame)
        camera.worker.quality_ready.connect(self._quality)
        camera.worker.captured.connect(self._captured)
        camera.worker.sequence_captured.connect(self._sequence_captured)
        camera.worker.sequence_running.connect(self._sequence_running)
        camera.worker.band_changed.connect(self._band_changed)
        camera.worker.failed.connect(self._failed)
        ctx.visit_changed.connect(lambda _visit: self._update_state())

    # -- texts and state ------------------------------------------------------------------

    def retranslate(self) -> None:
        """See :meth:`Screen.retranslate`."""
        tr = self.ctx.tr
        self.preview.set_placeholder(tr("ui.capture.no_picture"))
        self.preview.setAccessibleName(tr("ui.capture.preview"))
        self.band_box.setTitle(tr("ui.capture.bands"))
        self.quality_box.setTitle(tr("ui.capture.quality"))
        set_button_text(self.sequence_button, tr("ui.capture.sequence"),
                        tr("ui.capture.sequence_help"))
        set_button_text(self.capture_button, tr("ui.capture.capture"),
                        tr("ui.capture.capture_help", pedal=PEDAL_KEYS[0]))
        self.keys_hint.setText(tr("ui.capture.keys", pedal=PEDAL_KEYS[0]))
        set_button_text(self.reconnect_button, tr("ui.capture.reconnect"))
        set_button_text(self.next_lesion_button, tr("ui.capture.next_lesion"),
                        tr("ui.capture.next_lesion_help"))
        set_button_text(self.patient_button, tr("ui.capture.to_patient"))
        self._show_source()
        self._show_quality()
        self._update_state()

    def _show_source(self) -> None:
        tr, info = self.ctx.tr, self.source
        if info is None:
            if self.camera_error:
                text, kind = tr("ui.capture.camera_lost"), "error"
            elif self.ctx.camera.running:
                text, kind = tr("ui.capture.opening"), "info"
            else:
                text, kind = "", ""
            self._set_status(text, kind)
            return
        if info.kind == "camera":
            text, kind = tr("ui.capture.source_camera", device=info.device_id), "info"
        elif info.kind == "simulator":
            folder = info.device_id.removeprefix("simulator:")
            text, kind = tr("ui.capture.source_simulator", folder=folder), "warning"
        else:
            text, kind = tr("ui.capture.source_synthetic"), "error"
        name = tr(info.light_text[0], **info.light_text[1]) if info.light_text[0] else info.light
        if not info.light:
            detail = (detail_of(info.light_failure, tr) if info.light_failure is not None
                      else info.light_error)
            light = tr("ui.capture.light_error", detail=detail)
        elif info.light_simulated:
            light = tr("ui.capture.light_simulated", light=name)
        else:
            light = tr("ui.capture.light", light=name)
        self._set_status(f"{text}\n{light}", kind)
        for name, button in self.band_buttons.items():
            set_button_text(button, tr(f"ui.band.{name}"))

    def _set_status(self, text: str, kind: str) -> None:
        self.source_status.setText(text)
        self.source_status.setVisible(bool(text))
        self.source_status.setProperty("kind", kind)
        self.source_status.setAccessibleName(text)
        self.source_status.style().unpolish(self.source_status)
        self.source_status.style().polish(self.source_status)

    def _update_state(self) -> None:
        tr, visit = self.ctx.tr, self.ctx.visit
        if visit is None:
            self.visit_status.setText(tr("ui.capture.no_visit"))
        else:
            site = tr(f"ui.site.{visit.body_site}") if visit.body_site else tr(
                "ui.capture.no_site")
            self.visit_status.setText(tr("ui.capture.visit", pseudonym=visit.patient.pseudonym,
                                         visit=visit.visit.number, site=site))
        ready = (visit is not None and bool(visit.body_site) and self.source is not None
                 and not self.camera_error and not self.busy)
        self.capture_button.setEnabled(ready)
        self.band_box.setEnabled(self.source is not None and not self.busy)
        self.sequence_button.setEnabled(ready and self.source is not None
                                        and self.source.can_sequence)
        self.patient_button.setVisible(visit is None or not visit.body_site)
        self.reconnect_button.setVisible(bool(self.camera_error))
        self.next_lesion_button.setVisible(self.source is not None
                                           and self.source.can_change_lesion)
        self.next_lesion_button.setEnabled(not self.busy)

    # -- preview --------------------------------------------------------------------------

    def start_preview(self) -> None:
        """Open the camera (or simulator) in the camera thread and start the preview."""
        self.camera_error = ""
        self.message.clear_message()
        self.source = None
        self.ctx.camera.start(effective_camera_settings(self.ctx.settings),
                              self.ctx.settings.quality)
        self.fps_timer.start()
        self._show_source()
        self._update_state()

    def stop_preview(self) -> None:
        """Stop the preview and release the camera."""
        self.fps_timer.stop()
        self.ctx.camera.stop()
        self.source = None

    def _opened(self, info: SourceInfo) -> None:
        self.source = info
        for button in list(self.band_buttons.values()):
            self.band_group.removeButton(button)
            button.deleteLater()
        self.band_buttons.clear()
        for index, (name, _display) in enumerate(info.bands):
            button = make_button(f"band_{name}", "", self.band_box)
            button.setCheckable(True)
            button.setProperty("band", name)
            self.band_group.addButton(button)
            self.band_layout.addWidget(button, index // 2, index % 2)
            self.band_buttons[name] = button
        # the sequence button takes the odd band's empty cell (a row less: fits 1024×700)
        count = len(info.bands)
        self.band_layout.removeWidget(self.sequence_button)
        self.band_layout.addWidget(self.sequence_button, count // 2, count % 2, 1, 2 - count % 2)
        if info.band:
            self._band_changed(info.band)
        self._show_source()
        self._update_state()

    def _frame(self, image: QImage, _timestamp: float) -> None:
        self.preview.set_image(image)
        self.ctx.camera.frame_shown()

    def _show_fps(self) -> None:
        self.fps_label.setText(self.ctx.tr("ui.capture.fps", fps=f"{self.ctx.camera.fps():.1f}"))

    def _quality(self, report: QualityReport) -> None:
        self.quality = report
        self._show_quality()

    def _show_quality(self) -> None:
        tr, report = self.ctx.tr, self.quality
        for name, label in self.quality_labels.items():
            title = tr(f"ui.quality.{name}")
            if report is None:
                label.setText(f"–  {title}")
                label.setProperty("ok", "")
            else:
                passed = report[name].passed
                label.setText(f"{'✓' if passed else '✗'}  {title}")
                label.setProperty("ok", "yes" if passed else "no")
                label.setToolTip(quality_reason(tr, report[name]))
            label.setAccessibleName(label.text())
            label.style().unpolish(label)
            label.style().polish(label)
        if report is None:
            self.quality_summary.setText("")
        elif report.passed:
            self.quality_summary.setText(tr("ui.quality.good"))
        else:
            self.quality_summary.setText(
                "\n".join([tr("ui.quality.check"), *quality_reasons(tr, report)]))

    # -- light and capture ----------------------------------------------------------------

    def _band_clicked(self, button: QPushButton) -> None:
        self.ctx.camera.set_band(str(button.property("band")))

    def _band_changed(self, band: str) -> None:
        self.current_band = band
        if band in self.band_buttons:
            self.band_buttons[band].setChecked(True)

    def _may_capture(self) -> bool:
        """Say why not if a capture cannot be taken now; ask before replacing a result."""
        if not self.isVisible() or not self._ready_or_say_why():
            return False
        if not self.has_unsaved():
            return True
        choice = self.confirm_replace()
        if choice == "save":
            self.navigate.emit("result")  # the result is kept there, its save button focused
        return choice == "discard" and self.isVisible() and self._ready_or_say_why()

    def _ready_or_say_why(self) -> bool:
        reason = not_ready_reason(self.ctx.visit, self.source, self.camera_error, self.busy)
        if reason:
            self.message.show_message(self.ctx.tr(reason, detail=self.camera_error),
                                      "error" if self.camera_error else "warning")
        return not reason

    def capture(self) -> None:
        """Take a still (button, space bar or pedal)."""
        if not self._may_capture():
            return
        self.busy = True
        self.message.show_message(self.ctx.tr("ui.capture.capturing"), "info")
        self._update_state()
        self.ctx.camera.capture()

    def capture_sequence(self) -> None:
        """Take one frame per band (the preview pauses meanwhile)."""
        if not self.sequence_button.isEnabled() or not self._may_capture():
            return
        self.busy = True
        self._update_state()
        self.ctx.camera.capture_sequence()

    def _sequence_running(self, running: bool) -> None:
        if running:
            self.message.show_message(self.ctx.tr("ui.capture.sequence_running"), "info")

    def _captured(self, frame: Frame, band: str, requested_at: float) -> None:
        self.busy = False
        self.message.clear_message()
        self._update_state()
        self.taken.emit(CaptureTaken(frame, band, requested_at))

    def _sequence_captured(self, stack: list[BandFrame], requested_at: float) -> None:
        self.busy = False
        self.message.clear_message()
        self._update_state()
        chosen = classification_band([bf.band.name for bf in stack])  # white light first
        main = next((bf for bf in stack if bf.band.name == chosen), stack[0])
        self.taken.emit(CaptureTaken(main.frame, main.band.name, requested_at, tuple(stack)))

    def _failed(self, kind: str, error: BaseException) -> None:
        self.busy = False
        message = self.ctx.describe(error)
        if kind == "camera":
            self.camera_error = message
            self.preview.clear()
            self.source = None
            self.quality = None
            self._show_quality()
            self.fps_timer.stop()
            self.fps_label.setText("")
            self.message.error(message)
        else:
            self.message.show_message(message, "warning")
        self._show_source()
        self._update_state()

    # -- screen hooks ---------------------------------------------------------------------

    def on_shown(self) -> None:
        """Start the preview (and repeat a model problem, so nobody captures unaware)."""
        self.start_preview()
        if self.ctx.model_error:
            self.message.show_message(self.ctx.model_error, "warning")
        for shortcut in self.shortcuts:
            shortcut.setEnabled(True)
        self.capture_button.setFocus()

    def on_hidden(self) -> None:
        """Stop the preview (the camera is released while another screen is shown)."""
        for shortcut in self.shortcuts:
            shortcut.setEnabled(False)
        self.stop_preview()

    def reset(self) -> None:
        """Clear the preview."""
        self.preview.clear()
        self.quality = None
        self.message.clear_message()
        self._show_quality()
