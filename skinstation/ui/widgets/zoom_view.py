"""An image you can zoom (wheel, +/−, fit) and pan (drag), for looking closely at a lesion."""

from __future__ import annotations

from collections.abc import Callable

from PySide6.QtCore import QPointF, QRectF, QSize, Qt, Signal
from PySide6.QtGui import (
    QColor,
    QImage,
    QKeyEvent,
    QMouseEvent,
    QPainter,
    QPaintEvent,
    QResizeEvent,
    QWheelEvent,
)
from PySide6.QtWidgets import QHBoxLayout, QLabel, QWidget

from skinstation.ui.widgets.common import make_button, name_control, set_button_text
from skinstation.ui.widgets.image_view import PictureWidget

MIN_ZOOM = 1.0
"""Zoom of the whole image fitted to the view (never smaller)."""
MAX_ZOOM = 16.0
STEP = 1.25
"""One wheel notch or one press of + / −."""


class ZoomView(PictureWidget):
    """Shows an image fitted to the view, then zoomed around a point and panned by dragging.

    ``zoom`` is relative to the fitted size (1 = fit). The image is kept covering the view
    where it is larger than the view, so panning never loses it.

    Args:
        object_name: Object name (and default accessible name).
        minimum: Minimum size in device-independent pixels.
        parent: Parent widget.
    """

    view_changed = Signal()
    """The zoom or the pan changed."""

    def __init__(self, object_name: str, minimum: QSize | None = None,
                 parent: QWidget | None = None) -> None:
        super().__init__(object_name, minimum, parent)
        self.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
        self._zoom = MIN_ZOOM
        self._center = QPointF(0.5, 0.5)  # the image point (fractions) at the view's centre
        self._drag: QPointF | None = None

    # -- content ------------------------------------------------------------------------

    MAX_SIDE = 4096
    """Arrays are kept up to this side, for close looks."""

    @property
    def zoom(self) -> float:
        """The zoom relative to the fitted image (1 = fit)."""
        return self._zoom

    def set_image(self, image: QImage) -> None:
        """Show ``image``, fitted."""
        self._image = image
        self.fit()

    def clear(self) -> None:
        """Show the placeholder again."""
        self.set_image(QImage())

    # -- geometry -----------------------------------------------------------------------

    def _fitted(self) -> tuple[float, float]:
        if self._image.isNull() or self.width() <= 0 or self.height() <= 0:
            return 0.0, 0.0
        scale = min(self.width() / self._image.width(), self.height() / self._image.height())
        return self._image.width() * scale, self._image.height() * scale

    def view_rect(self) -> QRectF:
        """Where the image is drawn, in widget coordinates (empty without an image)."""
        fitted_w, fitted_h = self._fitted()
        width, height = fitted_w * self._zoom, fitted_h * self._zoom
        left = self.width() / 2 - self._center.x() * width
        top = self.height() / 2 - self._center.y() * height
        return QRectF(left, top, width, height)

    def _clamp(self) -> None:
        """Keep the image over the view: centred where it fits, covering it where larger."""
        fitted_w, fitted_h = self._fitted()
        x, y = self._center.x(), self._center.y()
        for axis, (size, view) in enumerate(((fitted_w * self._zoom, self.width()),
                                             (fitted_h * self._zoom, self.height()))):
            if size <= view or size <= 0:
                value = 0.5
            else:
                margin = view / 2 / size
                value = min(max(x if axis == 0 else y, margin), 1 - margin)
            if axis == 0:
                x = value
            else:
                y = value
        self._center = QPointF(x, y)

    def set_zoom(self, zoom: float, anchor: QPointF | None = None) -> None:
        """Zoom to ``zoom`` (clamped to 1…16), keeping the image point under ``anchor`` still.

        Args:
            zoom: The new zoom (1 = fit).
            anchor: A point in widget coordinates (the view's centre if None).
        """
        zoom = min(max(zoom, MIN_ZOOM), MAX_ZOOM)
        if self._image.isNull():
            return
        point = anchor if anchor is not None else QPointF(self.width() / 2, self.height() / 2)
        before = self.view_rect()
        if before.width() > 0 and before.height() > 0:
            fraction = QPointF((point.x() - before.left()) / before.width(),
                               (point.y() - before.top()) / before.height())
            fitted_w, fitted_h = self._fitted()
            width, height = fitted_w * zoom, fitted_h * zoom
            # keep `fraction` of the image under `point` at the new size
            self._center = QPointF(
                fraction.x() + (self.width() / 2 - point.x()) / width,
                fraction.y() + (self.height() / 2 - point.y()) / height)
        self._zoom = zoom
        self._changed()

    def zoom_in(self) -> None:
        """Zoom in one step around the view's centre."""
        self.set_zoom(self._zoom * STEP)

    def zoom_out(self) -> None:
        """Zoom out one step around the view's centre."""
        self.set_zoom(self._zoom / STEP)

    def fit(self) -> None:
        """Show the whole image again."""
        self._zoom, self._center = MIN_ZOOM, QPointF(0.5, 0.5)
        self._changed()

    def pan_by(self, dx: float, dy: float) -> None:
        """Move the image by ``(dx, dy)`` widget pixels (as far as it covers the view)."""
        rect = self.view_rect()
        if rect.width() <= 0 or rect.height() <= 0:
            return
        self._center = QPointF(self._center.x() - dx / rect.width(),
                               self._center.y() - dy / rect.height())
        self._changed()

    def _changed(self) -> None:
        self._clamp()
        self.update()
        self.view_changed.emit()

    # -- events -------------------------------------------------------------------------

    def wheelEvent(self, event: QWheelEvent) -> None:
        """Zoom around the pointer: one step per notch."""
        notches = event.angleDelta().y() / 120
        if notches == 0 or self._image.isNull():
            event.ignore()
            return
        self.set_zoom(self._zoom * STEP ** notches, event.position())
        event.accept()

    def mousePressEvent(self, event: QMouseEvent) -> None:
        """Start dragging (pan)."""
        if event.button() == Qt.MouseButton.LeftButton and not self._image.isNull():
            self._drag = event.position()
            self.setCursor(Qt.CursorShape.ClosedHandCursor)
            event.accept()
            return
        super().mousePressEvent(event)

    def mouseMoveEvent(self, event: QMouseEvent) -> None:
        """Pan while dragging."""
        if self._drag is not None:
            delta = event.position() - self._drag
            self._drag = event.position()
            self.pan_by(delta.x(), delta.y())
            event.accept()
            return
        super().mouseMoveEvent(event)

    def mouseReleaseEvent(self, event: QMouseEvent) -> None:
        """Stop dragging."""
        if self._drag is not None:
            self._drag = None
            self.unsetCursor()
            event.accept()
            return
        super().mouseReleaseEvent(event)

    def mouseDoubleClickEvent(self, event: QMouseEvent) -> None:
        """Double click: zoom in there, or fit again when zoomed in."""
        if self._zoom > MIN_ZOOM:
            self.fit()
        else:
            self.set_zoom(self._zoom * STEP * STEP, event.position())
        event.accept()

    def keyPressEvent(self, event: QKeyEvent) -> None:
        """+ / − zoom, 0 fits, arrow keys pan."""
        key, step = event.key(), 40.0
        actions: dict[int, Callable[[], None]] = {
            Qt.Key.Key_Plus: self.zoom_in, Qt.Key.Key_Equal: self.zoom_in,
            Qt.Key.Key_Minus: self.zoom_out, Qt.Key.Key_0: self.fit,
            Qt.Key.Key_Left: lambda: self.pan_by(step, 0),
            Qt.Key.Key_Right: lambda: self.pan_by(-step, 0),
            Qt.Key.Key_Up: lambda: self.pan_by(0, step),
            Qt.Key.Key_Down: lambda: self.pan_by(0, -step),
        }
        action = actions.get(key)
        if action is None:
            super().keyPressEvent(event)
            return
        action()
        event.accept()

    def resizeEvent(self, event: QResizeEvent) -> None:
        """Keep the image over the view after a resize."""
        super().resizeEvent(event)
        self._clamp()

    def paintEvent(self, event: QPaintEvent) -> None:
        """Draw the image at the current zoom and pan (or the placeholder)."""
        painter = QPainter(self)
        painter.fillRect(self.rect(), QColor("#111418"))
        if self._image.isNull():
            painter.setPen(QColor("#c8ccd2"))
            painter.drawText(self.rect(), int(Qt.AlignmentFlag.AlignCenter), self._placeholder)
            painter.end()
            return
        painter.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform, self._zoom < 4)
        painter.drawImage(self.view_rect(), self._image)
        painter.end()


class ZoomControls(QWidget):
    """The −, +, Fit buttons and the zoom shown in percent, for one :class:`ZoomView`.

    Args:
        tr: Translation function.
        view: The view controlled.
        object_prefix: Prefix of the buttons' object names.
        parent: Parent widget.
    """

    def __init__(self, tr: Callable[..., str], view: ZoomView, object_prefix: str,
                 parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.tr_ = tr
        self.view = view
        self.zoom_out = make_button(f"{object_prefix}ZoomOut", "", self)
        self.zoom_in = make_button(f"{object_prefix}ZoomIn", "", self)
        self.fit = make_button(f"{object_prefix}ZoomFit", "", self)
        self.level = QLabel(self)
        self.level.setObjectName(f"{object_prefix}ZoomLevel")
        self.zoom_out.clicked.connect(view.zoom_out)
        self.zoom_in.clicked.connect(view.zoom_in)
        self.fit.clicked.connect(view.fit)
        view.view_changed.connect(self._update)
        row = QHBoxLayout(self)
        row.setContentsMargins(0, 0, 0, 0)
        row.addWidget(self.zoom_out)
        row.addWidget(self.zoom_in)
        row.addWidget(self.fit)
        row.addWidget(self.level, 1)
        self.retranslate()

    def retranslate(self) -> None:
        """Redraw the texts in the current language."""
        tr = self.tr_
        set_button_text(self.zoom_out, tr("ui.zoom.out"))
        name_control(self.zoom_out, tr("ui.zoom.outName"))
        set_button_text(self.zoom_in, tr("ui.zoom.in"))
        name_control(self.zoom_in, tr("ui.zoom.inName"))
        set_button_text(self.fit, tr("ui.zoom.fit"))
        name_control(self.fit, tr("ui.zoom.fitName"))
        self._update()

    def _update(self) -> None:
        has_image = not self.view.image.isNull()
        self.zoom_out.setEnabled(has_image and self.view.zoom > MIN_ZOOM)
        self.zoom_in.setEnabled(has_image and self.view.zoom < MAX_ZOOM)
        self.fit.setEnabled(has_image and self.view.zoom > MIN_ZOOM)
        self.level.setText(self.tr_("ui.zoom.level", percent=round(self.view.zoom * 100))
                           if has_image else "")
