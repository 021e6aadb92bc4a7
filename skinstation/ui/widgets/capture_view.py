"""One stored capture: image, stored prediction and labels (history, review and compare)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping

from PySide6.QtCore import QSize, Qt
from PySide6.QtWidgets import QHBoxLayout, QLabel, QScrollArea, QVBoxLayout, QWidget

from skinstation.services.station import CaptureDetail
from skinstation.storage import Label
from skinstation.ui.widgets.common import text_or
from skinstation.ui.widgets.image_view import ImageView
from skinstation.ui.widgets.prediction_panel import PredictionPanel, PredictionView


def local_time(moment: dt.datetime | None) -> str:
    """``YYYY-MM-DD HH:MM`` in the station's local time ("" for None)."""
    if moment is None:
        return ""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.UTC)
    return moment.astimezone().strftime("%Y-%m-%d %H:%M")


class CaptureView(QWidget):
    """A stored capture with its prediction and label history.

    Args:
        tr: Translation function.
        object_prefix: Prefix of child object names.
        compact: Smaller image and no class bars (for side-by-side comparison).
        parent: Parent widget.
    """

    def __init__(self, tr: Callable[..., str], object_prefix: str, compact: bool = False,
                 parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.tr_ = tr
        self.detail: CaptureDetail | None = None
        self.names: Mapping[int, str] = {}
        self.header = QLabel(self)
        self.header.setObjectName(f"{object_prefix}Header")
        self.header.setProperty("class", "subheading")
        self.header.setWordWrap(True)
        self.image = ImageView(f"{object_prefix}Image", QSize(240, 180), self)
        self.panel = PredictionPanel(tr, object_prefix, self)
        self.panel.classes.setVisible(not compact)
        self.labels = QLabel(self)
        self.labels.setObjectName(f"{object_prefix}Labels")
        self.labels.setWordWrap(True)
        scroll = QScrollArea(self)
        scroll.setWidgetResizable(True)
        scroll.setFrameShape(QScrollArea.Shape.NoFrame)
        scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        scroll.setWidget(self.panel)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.header)
        if compact:  # side by side: image above its result
            layout.addWidget(self.image, 3)
            layout.addWidget(self.labels)
            layout.addWidget(scroll, 2)
        else:  # image and labels on the left, the result on the right
            left = QVBoxLayout()
            left.addWidget(self.image, 1)
            left.addWidget(self.labels)
            row = QHBoxLayout()
            row.addLayout(left, 1)
            row.addWidget(scroll, 1)
            layout.addLayout(row, 1)
        self.compact = compact

    def show_detail(self, detail: CaptureDetail | None,
                    names: Mapping[int, str] | None = None) -> None:
        """Show ``detail`` (None: empty); ``names`` maps operator ids to display names."""
        self.detail, self.names = detail, names or {}
        if detail is None:
            self.image.clear()
            self.panel.clear()
        else:
            self.image.set_array(detail.pixels)
            self.panel.show_prediction(PredictionView.of(detail.prediction)
                                       if detail.prediction else None)
        self.retranslate()

    def _label_line(self, key: str, label: Label) -> str:
        tr = self.tr_
        author = self.names.get(label.author_id) or tr("ui.detail.operator", id=label.author_id)
        name = (f"{tr(f'class.{label.code}')} ({label.code})" if label.code
                else tr("ui.detail.no_diagnosis"))  # a note given without a diagnosis
        line = tr(key, label=name, author=author, time=local_time(label.created_at))
        return line + (f" — {label.note}" if label.note else "")

    def retranslate(self) -> None:
        """Redraw the texts in the current language."""
        tr, detail = self.tr_, self.detail
        self.image.set_placeholder(tr("ui.detail.empty"))
        self.panel.retranslate()
        if self.compact:
            self.panel.classes.setVisible(False)
            self.panel.classes_title.setVisible(False)
        if detail is None:
            self.header.setText("")
            self.labels.setText("")
            return
        capture = detail.capture
        self.header.setText(tr(
            "ui.detail.header", id=capture.id, time=local_time(capture.capture_time),
            site=text_or(tr, f"ui.site.{capture.body_site}", capture.body_site),
            band=text_or(tr, f"ui.band.{capture.band}", capture.band)))
        lines = []
        if detail.labels.original is not None:
            lines.append(self._label_line("ui.detail.original", detail.labels.original))
        else:
            lines.append(tr("ui.detail.no_label"))
        lines += [self._label_line("ui.detail.review", review) for review in
                  detail.labels.reviews]
        if not detail.labels.reviews:
            lines.append(tr("ui.detail.not_reviewed"))
        self.labels.setText("\n".join(lines))
        self.labels.setAccessibleName(" ".join(lines))
