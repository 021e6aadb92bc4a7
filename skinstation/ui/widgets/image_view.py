"""An image area that scales its picture to fit, keeping the aspect ratio."""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import QRect, QSize, Qt
from PySide6.QtGui import QColor, QFont, QImage, QPainter, QPaintEvent
from PySide6.QtWidgets import QSizePolicy, QWidget

from skinstation.ui.widgets.text_wrap import wrap_text
from skinstation.ui.workers import to_qimage

CAPTION_PIXELS = 12
"""Font size of the caption (small: band thumbnails are 64 px wide)."""
CAPTION_LINES = 2


class PictureWidget(QWidget):
    """What every image area has: an object name, a minimum size, the image and a placeholder.

    Subclasses decide how the image is shown (:meth:`set_image`) and painted.

    Args:
        object_name: Object name (and default accessible name).
        minimum: Minimum size in device-independent pixels.
        parent: Parent widget.
    """

    MAX_SIDE = 1600
    """Arrays are scaled down to this side for display."""

    def __init__(self, object_name: str, minimum: QSize | None = None,
                 parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName(object_name)
        self.setAccessibleName(object_name)
        self.setMinimumSize(minimum or QSize(320, 240))
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        self._image = QImage()
        self._placeholder = ""

    @property
    def image(self) -> QImage:
        """The image shown (null when empty)."""
        return self._image

    def set_image(self, image: QImage) -> None:
        """Show ``image``."""
        self._image = image
        self.update()

    def set_array(self, rgb: np.ndarray, max_side: int | None = None) -> None:
        """Show an (H, W, 3) uint8 RGB array, scaled down to ``max_side`` (:attr:`MAX_SIDE`)."""
        side = max_side or self.MAX_SIDE
        self.set_image(to_qimage(rgb, side, side))

    def set_placeholder(self, text: str) -> None:
        """Text shown while there is no image."""
        self._placeholder = text
        self.update()


class ImageView(PictureWidget):
    """Shows a ``QImage`` (or an RGB array) centred and scaled; a text when empty.

    Args:
        object_name: Object name (and default accessible name).
        minimum: Minimum size in device-independent pixels.
        parent: Parent widget.
    """

    def __init__(self, object_name: str, minimum: QSize | None = None,
                 parent: QWidget | None = None) -> None:
        super().__init__(object_name, minimum, parent)
        self._caption = ""
        self.frames_painted = 0

    def set_caption(self, text: str) -> None:
        """A short label drawn over the bottom of the image (e.g. the band)."""
        self._caption = text
        self.update()

    def clear(self) -> None:
        """Show the placeholder again."""
        self._image = QImage()
        self.update()

    def sizeHint(self) -> QSize:
        """Preferred size: a 4:3 preview."""
        return QSize(640, 480)

    def paintEvent(self, event: QPaintEvent) -> None:
        """Draw the scaled image (or the placeholder) on a dark field."""
        painter = QPainter(self)
        painter.fillRect(self.rect(), QColor("#1f2328"))
        if self._image.isNull():
            painter.setPen(QColor("#d0d7de"))
            painter.drawText(self.rect().adjusted(16, 16, -16, -16),
                             Qt.AlignmentFlag.AlignCenter | Qt.TextFlag.TextWordWrap,
                             self._placeholder)
            return
        size = self._image.size().scaled(self.size(), Qt.AspectRatioMode.KeepAspectRatio)
        target = QRect(0, 0, size.width(), size.height())
        target.moveCenter(self.rect().center())
        painter.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform)
        painter.drawImage(target, self._image)
        if self._caption:
            lines, _ = self._caption_lines()
            painter.setFont(self._caption_font())
            spacing = painter.fontMetrics().lineSpacing()
            tall = spacing * len(lines) + 2
            painter.fillRect(QRect(0, self.height() - tall, self.width(), tall),
                             QColor(0, 0, 0, 170))
            painter.setPen(QColor("white"))
            for number, line in enumerate(lines):
                painter.drawText(QRect(0, self.height() - tall + 1 + number * spacing,
                                       self.width(), spacing), Qt.AlignmentFlag.AlignCenter, line)
        self.frames_painted += 1

    def _caption_font(self) -> QFont:
        font = QFont(self.font())
        font.setPixelSize(CAPTION_PIXELS)
        return font

    def _caption_lines(self) -> tuple[list[str], bool]:
        """The caption wrapped to the view's width (two lines at most), and if it was cut."""
        return wrap_text(self._caption_font(), self._caption, self.width() - 4, CAPTION_LINES)

    def elided_texts(self) -> list[str]:
        """The caption, if it had to be shortened to fit (see ``tests/ui/layout_check``)."""
        return [self._caption] if self._caption and self._caption_lines()[1] else []
