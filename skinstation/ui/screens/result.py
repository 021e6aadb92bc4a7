"""Result: the capture, an optional heatmap, the decision and probabilities; label and save.

The screen shows the band of the capture; a capture in a band other than white light is not
classified (the rule is :mod:`skinstation.services.capture`'s) and the screen says why. The
operator's label choices are the model's own classes (``ModelManager.class_codes``).
"""

from __future__ import annotations

import dataclasses
import time

import numpy as np
from PySide6.QtCore import QSize, Qt, Signal
from PySide6.QtWidgets import (
    QComboBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QScrollArea,
    QVBoxLayout,
    QWidget,
)

from skinstation.inference.heatmap import Explanation
from skinstation.services import capture as capture_case
from skinstation.services.capture import CaptureAnalysis, CaptureSaved
from skinstation.services.result_text import band_text, quality_text, unclassified_texts
from skinstation.storage import Visit
from skinstation.ui.context import StationContext
from skinstation.ui.screens.base import Screen
from skinstation.ui.screens.capture import CaptureTaken
from skinstation.ui.widgets.common import (
    MessageBar,
    heading,
    make_button,
    name_control,
    set_button_text,
    text_or,
)
from skinstation.ui.widgets.heatmap_legend import HeatmapControls
from skinstation.ui.widgets.image_view import ImageView
from skinstation.ui.widgets.prediction_panel import PredictionPanel, PredictionView
from skinstation.ui.widgets.wheel_guard import guard_wheel

Outcome = CaptureAnalysis
"""What the model thread found for one capture (see :class:`CaptureAnalysis`)."""


class ResultScreen(Screen):
    """Shows a capture's result and saves it with the operator's label.

    Signals:
        result_shown: Seconds from the capture request to the result being shown.
        saved: Ids of the captures just saved.

    The capture use case (analyse, save what was shown) is :mod:`skinstation.services.capture`.
    """

    screen_id = "result"
    title_key = "ui.nav.result"
    result_shown = Signal(float)
    saved = Signal(object)

    def __init__(self, ctx: StationContext, parent: QWidget | None = None) -> None:
        super().__init__(ctx, parent)
        self.taken: CaptureTaken | None = None
        self.outcome: Outcome | None = None
        self.explanation: Explanation | None = None
        self.saved_ids: list[int] = []
        self.last_saved: CaptureSaved | None = None
        self.timings: list[float] = []
        self.title = heading("resultTitle", self)
        self.image = ImageView("resultImage", QSize(320, 240), self)
        self.heatmap_button = make_button("heatmapButton", "", self)
        self.heatmap_button.setCheckable(True)
        self.heatmap_button.toggled.connect(self._toggle_heatmap)
        self.heatmap_controls = HeatmapControls(ctx.tr, self)
        self.heatmap_controls.setVisible(False)
        self.heatmap_controls.opacity_changed.connect(lambda _: self._show_heatmap())
        self.bands = QHBoxLayout()
        self.band_views: list[ImageView] = []
        self.timing = QLabel(self)
        self.timing.setObjectName("resultTiming")
        self.band_label = QLabel(self)
        self.band_label.setObjectName("resultBand")
        self.band_label.setProperty("class", "subheading")
        self.band_label.setWordWrap(True)
        self.panel = PredictionPanel(ctx.tr, "result", self)
        self.quality = QLabel(self)
        self.quality.setObjectName("resultQuality")
        self.quality.setWordWrap(True)
        self.classify_anyway = make_button("classifyAnyway", "", self)
        self.classify_anyway.clicked.connect(lambda: self._analyse(force=True))
        self.label_title = QLabel(self)
        self.label_combo = QComboBox(self)
        self.label_combo.setObjectName("operatorLabel")
        self.label_combo.setMinimumHeight(44)
        guard_wheel(self.label_combo)
        self.note_title = QLabel(self)
        self.note = QLineEdit(self)
        self.note.setObjectName("operatorNote")
        self.note.setMinimumHeight(44)
        self.note.setMaxLength(2000)
        self.save_button = make_button("saveButton", "primary", self)
        self.save_button.clicked.connect(self.save)
        self.retake_button = make_button("retakeButton", "", self)
        self.retake_button.clicked.connect(lambda: self.navigate.emit("capture"))
        self.message = MessageBar("resultMessage", self)

        self.label_combo.setSizeAdjustPolicy(
            QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
        self.label_combo.setMinimumContentsLength(14)  # leaves the note room at 1024 px
        top = QHBoxLayout()
        top.addWidget(self.title, 1)
        top.addWidget(self.timing)
        left = QVBoxLayout()
        left.addWidget(self.image, 1)
        left.addLayout(self.bands)
        left.addWidget(self.heatmap_button)
        left.addWidget(self.heatmap_controls)
        right_widget = QWidget(self)
        right = QVBoxLayout(right_widget)
        right.setContentsMargins(0, 0, 8, 0)
        right.addWidget(self.band_label)
        right.addWidget(self.panel)
        right.addWidget(self.quality)
        right.addWidget(self.classify_anyway)
        right.addStretch(1)
        scroll = QScrollArea(self)
        scroll.setObjectName("resultScroll")
        scroll.setWidgetResizable(True)
        scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        scroll.setFrameShape(QScrollArea.Shape.NoFrame)
        scroll.setWidget(right_widget)
        columns = QHBoxLayout()
        columns.addLayout(left, 5)
        columns.addWidget(scroll, 6)
        actions = QHBoxLayout()
        actions.addWidget(self.label_title)
        actions.addWidget(self.label_combo, 2)
        actions.addWidget(self.note_title)
        actions.addWidget(self.note, 2)
        actions.addWidget(self.retake_button)
        actions.addWidget(self.save_button, 1)
        self.label_title.setBuddy(self.label_combo)
        self.note_title.setBuddy(self.note)
        layout = QVBoxLayout(self)
        layout.addLayout(top)
        layout.addLayout(columns, 1)
        layout.addLayout(actions)
        layout.addWidget(self.message)
        self._update_state()

    # -- texts ----------------------------------------------------------------------------

    def retranslate(self) -> None:
        """See :meth:`Screen.retranslate`."""
        tr = self.ctx.tr
        self.title.setText(tr("ui.result.title"))
        self.image.set_placeholder(tr("ui.result.no_capture"))
        name_control(self.image, tr("ui.result.image"))
        set_button_text(self.heatmap_button, tr("ui.result.heatmap"), tr("ui.result.heatmap_help"))
        set_button_text(self.classify_anyway, tr("ui.result.classify_anyway"))
        set_button_text(self.save_button, tr("ui.result.save"))
        set_button_text(self.retake_button, tr("ui.result.retake"))
        self.label_title.setText(tr("ui.result.label"))
        name_control(self.label_combo, tr("ui.result.label"))
        self.note_title.setText(tr("ui.result.note"))
        name_control(self.note, tr("ui.result.note"))
        self._fill_labels()
        self.heatmap_controls.retranslate()
        self.panel.retranslate()
        self._show_band()
        self._show_unclassified()
        self._show_quality()

    def _fill_labels(self) -> None:
        """The operator's choices: no label, then the model's classes (its taxonomy's)."""
        tr, service = self.ctx.tr, self.ctx.service
        codes = service.models.class_codes() if service is not None else ()
        current = self.label_combo.currentData()
        self.label_combo.clear()
        self.label_combo.addItem(tr("ui.result.no_label"), "")
        for code in codes:
            self.label_combo.addItem(f"{text_or(tr, f'class.{code}', code)} ({code})", code)
        self.label_combo.setCurrentIndex(max(0, self.label_combo.findData(current or "")))

    def _show_band(self) -> None:
        """Which light the capture was taken in (and, for a sequence, what is classified)."""
        taken = self.taken
        self.band_label.setText("" if taken is None else band_text(
            self.ctx.tr, taken.band, len(taken.sequence or ())))

    def _show_unclassified(self) -> None:
        """The banner and guidance of an analysed capture that has no prediction."""
        texts = None if self.outcome is None else unclassified_texts(self.ctx.tr, self.outcome)
        if texts is not None:
            self.panel.banner.set_decision("", texts[0])
            self.panel.guidance.setText(texts[1])

    def _show_quality(self) -> None:
        self.quality.setText(quality_text(self.ctx.tr, self.outcome))

    def _update_state(self) -> None:
        has = self.taken is not None
        classified = self.outcome is not None and self.outcome.prediction is not None
        self.heatmap_button.setEnabled(classified and self.outcome.prediction.assessable)  # type: ignore[union-attr]
        quality_failed = (self.outcome is not None
                          and self.outcome.not_classified == capture_case.NOT_CLASSIFIED_QUALITY)
        self.classify_anyway.setVisible(quality_failed)
        self.save_button.setEnabled(has and self.outcome is not None and not self.saved_ids)

    # -- analysis -------------------------------------------------------------------------

    def show_capture(self, taken: CaptureTaken) -> None:
        """Show a new capture and classify it in the model thread."""
        self.taken, self.outcome, self.explanation, self.saved_ids = taken, None, None, []
        self.last_saved = None
        self.heatmap_button.setChecked(False)
        self._fill_labels()  # the model (and so its classes) may have changed
        self.image.set_array(taken.frame.pixels)
        for view in self.band_views:
            view.deleteLater()
        self.band_views = []
        for band_frame in taken.sequence or ():
            name = text_or(self.ctx.tr, f"ui.band.{band_frame.band.name}",
                           band_frame.band.display_name)
            view = ImageView(f"band_{band_frame.band.name}", QSize(64, 48), self)
            view.setFixedHeight(64)
            view.set_array(band_frame.frame.pixels, 160)
            view.set_caption(name)
            view.setToolTip(band_frame.band.display_name)
            view.setAccessibleName(band_frame.band.display_name)
            self.bands.addWidget(view)
            self.band_views.append(view)
        self.label_combo.setCurrentIndex(0)
        self.note.clear()
        self.timing.setText("")
        self.panel.clear()
        self.panel.banner.set_decision("", self.ctx.tr("ui.result.classifying"))
        self.message.clear_message()
        if taken.frame.synthetic:
            self.message.show_message(self.ctx.tr("ui.result.synthetic"), "warning")
        self._show_band()
        self._show_quality()
        self._update_state()
        self._analyse(force=False)

    def _analyse(self, force: bool) -> None:
        taken = self.taken
        if taken is None:
            return
        service = self.ctx.require_service()
        pixels, band = taken.frame.pixels, taken.band
        self.classify_anyway.setEnabled(False)
        self.ctx.run_model(lambda: capture_case.analyse(service, pixels, band=band, force=force),
                           lambda outcome: self._analysed(taken, outcome),
                           self.message.error)

    def _analysed(self, taken: CaptureTaken, outcome: Outcome) -> None:
        if taken is not self.taken:
            return  # a newer capture replaced this one
        self.outcome = outcome
        self.classify_anyway.setEnabled(True)
        tr = self.ctx.tr
        if outcome.prediction is not None:
            self.panel.show_prediction(PredictionView.of(outcome.prediction))
        else:
            self.panel.clear()
            self._show_unclassified()
        if outcome.model_error is not None:
            self.message.error(self.ctx.describe(outcome.model_error))
        seconds = time.perf_counter() - taken.requested_at
        if outcome.prediction is not None and len(self.timings) < 10000:
            self.timings.append(seconds)
        self.timing.setText(tr("ui.result.timing", seconds=f"{seconds:.2f}"))
        self._show_quality()
        self._update_state()
        self.result_shown.emit(seconds)

    # -- heatmap --------------------------------------------------------------------------

    def _toggle_heatmap(self, on: bool) -> None:
        self.heatmap_controls.setVisible(on and self.explanation is not None)
        if self.taken is None:
            return
        if not on:
            self.image.set_array(self.taken.frame.pixels)
            return
        if self.explanation is not None:
            self._show_heatmap()
            return
        service, taken = self.ctx.require_service(), self.taken
        self.message.show_message(self.ctx.tr("ui.result.heatmap_running"), "info")
        self.ctx.run_model(lambda: service.explain(taken.frame.pixels),
                           lambda explanation: self._explained(taken, explanation),
                           self.message.error)

    def _explained(self, taken: CaptureTaken, explanation: Explanation) -> None:
        if taken is not self.taken:
            return
        self.explanation = explanation
        self.heatmap_controls.set_class(explanation.target_class)
        self.message.show_message(self.ctx.tr("ui.result.heatmap_note"), "info")
        if self.heatmap_button.isChecked():
            self.heatmap_controls.setVisible(True)
            self._show_heatmap()

    def _show_heatmap(self) -> None:
        overlay = self.heatmap_image()
        if overlay is not None and self.heatmap_button.isChecked():
            self.image.set_array(overlay)

    def heatmap_image(self) -> np.ndarray | None:
        """The overlay at the chosen opacity (None before the heatmap is computed)."""
        if self.explanation is None:
            return None
        return self.explanation.overlay(self.heatmap_controls.opacity)

    # -- saving ---------------------------------------------------------------------------

    def save(self) -> None:
        """Save the capture (or sequence), the prediction shown and the operator's label."""
        taken, outcome, visit = self.taken, self.outcome, self.ctx.visit
        if taken is None or outcome is None or self.saved_ids:
            return
        if visit is None or not visit.body_site:
            self.message.error(self.ctx.tr("ui.result.no_visit"))
            return
        service, session = self.ctx.require_service(), self.ctx.require_session()
        code, note = self.label_combo.currentData() or None, self.note.text()
        visit_id, site, access = visit.visit.id, visit.body_site, visit.access_time
        lesion_id = visit.lesion_id
        sequence = ([(bf.band.name, bf.frame) for bf in taken.sequence]
                    if taken.sequence else None)

        def save() -> CaptureSaved:
            return capture_case.save(
                service, session, visit_id, outcome, frame=taken.frame, band=taken.band,
                body_site=site, access_time=access, sequence=sequence, diagnosis=code,
                note=note, lesion_id=lesion_id)

        self.save_button.setEnabled(False)
        self.message.show_message(self.ctx.tr("ui.result.saving"), "info")
        self.ctx.run_data(save, self._saved, self._save_failed)

    def _saved(self, saved: CaptureSaved) -> None:
        self.last_saved, self.saved_ids = saved, list(saved.capture_ids)
        self._follow_visit(saved.visit_id)
        self.message.show_message(self.saved_text(saved), "success")
        self._update_state()
        self.saved.emit(self.saved_ids)

    def _follow_visit(self, visit_id: int | None) -> None:
        """The visit was left open too long and closed: the capture opened a new one."""
        visit = self.ctx.visit
        if visit is None or visit_id is None or visit_id == visit.visit.id:
            return
        service, session = self.ctx.require_service(), self.ctx.require_session()

        def moved(new_visit: Visit) -> None:
            current = self.ctx.visit
            if current is not None and current.visit.id == visit.visit.id:
                # the same patient and lesion: not set_visit, which moves a simulator on
                self.ctx.visit = dataclasses.replace(current, visit=new_visit)
                self.ctx.visit_changed.emit(self.ctx.visit)

        self.ctx.run_data(lambda: service.visit(session, visit_id), moved)

    def saved_text(self, saved: CaptureSaved) -> str:
        """The confirmation naming what was saved (captures, prediction, diagnosis, note)."""
        tr, ids = self.ctx.tr, ", ".join(f"#{i}" for i in saved.capture_ids)
        texts = {
            "capture": tr("ui.result.saved_capture", ids=ids),
            "prediction": tr("ui.result.saved_prediction"),
            "diagnosis": tr("ui.result.saved_diagnosis", code=saved.diagnosis or ""),
            "note": tr("ui.result.saved_note"),
        }
        return tr("ui.result.saved", parts=", ".join(texts[part] for part in saved.parts))

    def _save_failed(self, message: str) -> None:
        self.message.error(message)
        self._update_state()

    # -- hooks ----------------------------------------------------------------------------

    def on_shown(self) -> None:
        """Focus the save button when there is something to save."""
        (self.save_button if self.save_button.isEnabled() else self.retake_button).setFocus()

    def reset(self) -> None:
        """Forget the capture."""
        self.taken, self.outcome, self.explanation, self.saved_ids = None, None, None, []
        self.last_saved = None
        self.image.clear()
        for view in self.band_views:
            view.deleteLater()
        self.band_views = []
        self.panel.clear()
        self.message.clear_message()
        self.timing.setText("")
        self._show_band()
        self._show_quality()
        self._update_state()

    @property
    def has_unsaved(self) -> bool:
        """A classified capture has not been saved yet."""
        return self.taken is not None and not self.saved_ids

    def button(self, name: str) -> QPushButton:
        """A button by object name (for tests and keyboard shortcuts)."""
        widget = self.findChild(QPushButton, name)
        assert widget is not None, name
        return widget
