"""The heatmap's legend (what its colours mean) and its opacity slider (issue 19, point 13)."""

from __future__ import annotations

from collections.abc import Callable

import cv2
import numpy as np
from PySide6.QtCore import QPointF, QRectF, Qt, Signal
from PySide6.QtGui import QColor, QLinearGradient, QPainter, QPaintEvent
from PySide6.QtWidgets import QGridLayout, QLabel, QSizePolicy, QSlider, QWidget

from skinstation.ui.widgets.wheel_guard import guard_wheel

DEFAULT_OPACITY = 45
"""Percent; the overlay's default blend (``Explanation.overlay``'s 0.45)."""


def colour_scale(steps: int = 9) -> list[tuple[float, tuple[int, int, int]]]:
    """``(position 0..1, RGB)`` stops of the colour map the heatmap overlay uses (JET)."""
    values = np.linspace(0, 255, steps).astype(np.uint8).reshape(1, steps)
    rgb = cv2.cvtColor(cv2.applyColorMap(values, cv2.COLORMAP_JET), cv2.COLOR_BGR2RGB)[0]
    return [(i / (steps - 1), (int(r), int(g), int(b))) for i, (r, g, b) in enumerate(rgb)]


class ColourScale(QWidget):
    """A horizontal bar showing the heatmap's colour map from low (left) to high (right)."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("heatmapScale")
        self.setMinimumHeight(14)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)
        self.stops = colour_scale()

    def paintEvent(self, event: QPaintEvent) -> None:
        """Draw the gradient."""
        painter = QPainter(self)
        rect = QRectF(self.rect()).adjusted(0, 2, 0, -2)
        gradient = QLinearGradient(QPointF(rect.left(), 0), QPointF(rect.right(), 0))
        for position, (r, g, b) in self.stops:
            gradient.setColorAt(position, QColor(r, g, b))
        painter.setPen(Qt.PenStyle.NoPen)
        painter.setBrush(gradient)
        painter.drawRoundedRect(rect, 3, 3)


class HeatmapControls(QWidget):
    """Legend and opacity of the heatmap overlay.

    Signals:
        opacity_changed: The new opacity, 0..1.

    Args:
        tr: Translation function.
        parent: Parent widget.
    """

    opacity_changed = Signal(float)

    def __init__(self, tr: Callable[..., str], parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("heatmapControls")
        self.tr_ = tr
        self.class_code = ""
        self.scale = ColourScale(self)
        self.low, self.high = QLabel(self), QLabel(self)
        self.high.setAlignment(Qt.AlignmentFlag.AlignRight)
        self.legend = QLabel(self)
        self.legend.setObjectName("heatmapLegend")
        self.legend.setWordWrap(True)
        self.opacity_title = QLabel(self)
        self.opacity_title.setWordWrap(True)
        self.slider = QSlider(Qt.Orientation.Horizontal, self)
        self.slider.setObjectName("heatmapOpacity")
        self.slider.setRange(0, 100)
        self.slider.setSingleStep(5)
        self.slider.setPageStep(10)
        self.slider.setValue(DEFAULT_OPACITY)
        self.slider.setMinimumHeight(36)
        guard_wheel(self.slider)
        self.opacity_title.setBuddy(self.slider)
        self.slider.valueChanged.connect(lambda value: self.opacity_changed.emit(value / 100))
        layout = QGridLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.low, 0, 0)
        layout.addWidget(self.scale, 0, 1)
        layout.addWidget(self.high, 0, 2)
        layout.addWidget(self.legend, 1, 0, 1, 3)
        layout.addWidget(self.opacity_title, 2, 0)
        layout.addWidget(self.slider, 2, 1, 1, 2)
        layout.setColumnStretch(1, 1)
        self.retranslate()

    @property
    def opacity(self) -> float:
        """The overlay's opacity, 0..1."""
        return self.slider.value() / 100

    def set_class(self, code: str) -> None:
        """The fine class the heatmap explains (named in the legend)."""
        self.class_code = code
        self.retranslate()

    def retranslate(self) -> None:
        """Redraw the texts in the current language."""
        tr, code = self.tr_, self.class_code
        try:
            name = f"{tr(f'class.{code}')} ({code})" if code else ""
        except KeyError:
            name = code
        self.low.setText(tr("ui.result.heatmap_low"))
        self.high.setText(tr("ui.result.heatmap_high"))
        self.legend.setText(tr("ui.result.heatmap_legend", name=name))
        self.opacity_title.setText(tr("ui.result.heatmap_opacity"))
        self.slider.setAccessibleName(tr("ui.result.heatmap_opacity"))
        self.scale.setAccessibleName(f"{tr('ui.result.heatmap_low')} – "
                                     f"{tr('ui.result.heatmap_high')}")
