"""Two captures of the same lesion side by side, older on the left (change over time)."""

from __future__ import annotations

from collections.abc import Callable, Mapping

from PySide6.QtWidgets import QHBoxLayout, QLabel, QVBoxLayout, QWidget

from skinstation.services.station import CaptureDetail
from skinstation.ui.widgets.capture_view import CaptureView
from skinstation.ui.widgets.common import text_or


class CompareView(QWidget):
    """Side-by-side comparison of two stored captures.

    Args:
        tr: Translation function.
        parent: Parent widget.
    """

    def __init__(self, tr: Callable[..., str], parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("compareView")
        self.tr_ = tr
        self.summary = QLabel(self)
        self.summary.setObjectName("compareSummary")
        self.summary.setProperty("class", "subheading")
        self.summary.setWordWrap(True)
        self.left = CaptureView(tr, "compareLeft", compact=True, parent=self)
        self.right = CaptureView(tr, "compareRight", compact=True, parent=self)
        row = QHBoxLayout()
        row.addWidget(self.left, 1)
        row.addWidget(self.right, 1)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.summary)
        layout.addLayout(row, 1)
        self.details: tuple[CaptureDetail, CaptureDetail] | None = None

    def show_pair(self, first: CaptureDetail, second: CaptureDetail,
                  names: Mapping[int, str] | None = None) -> None:
        """Show two captures, the older one on the left."""
        older, newer = sorted((first, second), key=lambda d: d.capture.capture_time)
        self.details = (older, newer)
        self.left.show_detail(older, names)
        self.right.show_detail(newer, names)
        self.retranslate()

    def retranslate(self) -> None:
        """Redraw the texts in the current language."""
        self.left.retranslate()
        self.right.retranslate()
        if self.details is None:
            self.summary.setText("")
            return
        older, newer = self.details
        seconds = (newer.capture.capture_time - older.capture.capture_time).total_seconds()
        if seconds >= 86400:
            interval = self.tr_("ui.compare.days", count=round(seconds / 86400))
        elif seconds >= 3600:
            interval = self.tr_("ui.compare.hours", count=round(seconds / 3600))
        else:
            interval = self.tr_("ui.compare.minutes", count=max(0, round(seconds / 60)))
        text = self.tr_("ui.compare.summary", interval=interval)
        if older.capture.body_site != newer.capture.body_site:
            text += "\n⚠ " + self.tr_("ui.compare.different_site")
        if older.capture.band != newer.capture.band:
            text += "\n⚠ " + self.tr_(
                "ui.compare.different_band",
                older=text_or(self.tr_, f"ui.band.{older.capture.band}", older.capture.band),
                newer=text_or(self.tr_, f"ui.band.{newer.capture.band}", newer.capture.band))
        self.summary.setText(text)
        self.summary.setAccessibleName(text)
