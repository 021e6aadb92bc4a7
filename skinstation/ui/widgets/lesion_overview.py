"""A lesion's overview (macro) photo with the lesion marked on it, on the lesion timeline.

The panel lists the patient's captures; the one chosen is shown, and a click on it stores the
lesion's point (0..1 across and down the photo) through
:meth:`~skinstation.services.lesions.LesionService.set_overview` (audited by the store), drawn
as a ring. "Clear overview" removes the photo and its mark. Choosing and marking need the
capture permission; anyone who may see the timeline sees the photo and its mark.
"""

from __future__ import annotations

from PySide6.QtCore import QPointF, QRect, QRectF, QSize, Qt, Signal
from PySide6.QtGui import QColor, QMouseEvent, QPainter, QPaintEvent, QPen
from PySide6.QtWidgets import QComboBox, QHBoxLayout, QLabel, QVBoxLayout, QWidget

from skinstation.auth import can_capture
from skinstation.services.lesions import LesionService
from skinstation.services.report import local_time
from skinstation.storage.lesions import LesionInfo
from skinstation.storage.queries import CaptureSummary
from skinstation.ui.context import StationContext
from skinstation.ui.widgets.common import MessageBar, make_button, name_control, set_button_text
from skinstation.ui.widgets.image_view import ImageView

PHOTO_SIDE = 960
"""Long side (pixels) the overview photo is read at for display."""
MARK_RED = "#d1242f"


class OverviewImage(ImageView):
    """A photo that draws the lesion's mark and, when clickable, reports where it was clicked.

    Signals:
        clicked: ``(x, y)``, 0..1 across and down the photo, after a click on it.
    """

    clicked = Signal(float, float)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__("overviewImage", QSize(200, 110), parent)
        self.mark: tuple[float, float] | None = None
        self.clickable = False

    def set_mark(self, point: tuple[float, float] | None) -> None:
        """Draw the ring at ``point`` (0..1 of the photo), or none."""
        self.mark = point
        self.update()

    def set_clickable(self, clickable: bool) -> None:
        """Whether a click marks the lesion (a cross-hair cursor says so)."""
        self.clickable = clickable
        self.setCursor(Qt.CursorShape.CrossCursor if clickable else Qt.CursorShape.ArrowCursor)

    def image_rect(self) -> QRectF:
        """Where the photo is drawn in the widget (as :class:`ImageView` scales it)."""
        if self.image.isNull():
            return QRectF()
        size = self.image.size().scaled(self.size(), Qt.AspectRatioMode.KeepAspectRatio)
        target = QRect(0, 0, size.width(), size.height())
        target.moveCenter(self.rect().center())
        return QRectF(target)

    def point_of(self, x: float, y: float) -> QPointF:
        """The widget position of the photo's point ``x``/``y`` (0..1)."""
        box = self.image_rect()
        return QPointF(box.left() + x * box.width(), box.top() + y * box.height())

    def mousePressEvent(self, event: QMouseEvent) -> None:
        """A left click on the photo gives its point (when clickable)."""
        box, position = self.image_rect(), event.position()
        if (self.clickable and event.button() == Qt.MouseButton.LeftButton
                and box.width() > 0 and box.height() > 0 and box.contains(position)):
            self.clicked.emit(min(1.0, max(0.0, (position.x() - box.left()) / box.width())),
                              min(1.0, max(0.0, (position.y() - box.top()) / box.height())))
            event.accept()
            return
        super().mousePressEvent(event)

    def paintEvent(self, event: QPaintEvent) -> None:
        """The photo, then a ring (white halo, red line) around the marked point."""
        super().paintEvent(event)
        box = self.image_rect()
        if self.mark is None or box.isEmpty():
            return
        painter = QPainter(self)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        centre = self.point_of(*self.mark)
        radius = max(7.0, min(box.width(), box.height()) * 0.06)
        painter.setBrush(Qt.BrushStyle.NoBrush)
        for colour, width in (("white", 5.0), (MARK_RED, 2.5)):
            painter.setPen(QPen(QColor(colour), width))
            painter.drawEllipse(centre, radius, radius)
        painter.end()


class LesionOverviewPanel(QWidget):
    """Choose the lesion's overview photo among the patient's captures and mark the lesion.

    Args:
        ctx: The station context (service, session, translator, worker threads).
        message: Where the panel says what it stored (the screen's message bar).
        parent: Parent widget.

    Signals:
        changed: The lesion (:class:`LesionInfo`) after its overview was set or cleared.
    """

    changed = Signal(object)

    def __init__(self, ctx: StationContext, message: MessageBar,
                 parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.ctx = ctx
        self.message = message
        self.lesion: LesionInfo | None = None
        self.patient_id: int | None = None
        self.captures: list[CaptureSummary] = []
        """The patient's captures, newest first (the choices)."""
        self.shown_id: int | None = None
        """The capture whose photo is shown (None: none yet)."""
        self.label = QLabel(self)
        self.choice = QComboBox(self)
        self.choice.setObjectName("overviewCapture")
        self.choice.setMinimumHeight(44)
        # the items are long (number, time, site): the list may shrink in a narrow window
        self.choice.setSizeAdjustPolicy(
            QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
        self.choice.setMinimumContentsLength(12)
        self.choice.currentIndexChanged.connect(lambda _i: self._chosen())
        self.label.setBuddy(self.choice)
        self.clear_button = make_button("overviewClear", "", self)
        self.clear_button.clicked.connect(self.clear)
        self.view = OverviewImage(self)
        self.view.clicked.connect(self.mark)

        row = QHBoxLayout()  # the list on its own line: its items are long
        row.addWidget(self.label)
        row.addStretch(1)
        row.addWidget(self.clear_button)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addLayout(row)
        layout.addWidget(self.choice)
        layout.addWidget(self.view, 1)
        self._update_state()

    def retranslate(self) -> None:
        """Set every text in the window's language."""
        tr = self.ctx.tr
        self.label.setText(tr("ui.lesions.overview"))
        set_button_text(self.clear_button, tr("ui.lesions.overview_clear"),
                        tr("ui.lesions.overview_clear_help"))
        self.view.set_placeholder(tr("ui.lesions.overview_hint"))
        name_control(self.choice, tr("ui.lesions.overview"))
        name_control(self.view, tr("ui.lesions.overview_view"), tr("ui.lesions.overview_hint"))
        self._fill_choice()
        self._show_caption()

    # -- data -----------------------------------------------------------------------------

    def set_patient(self, patient_id: int | None) -> None:
        """Read the patient's captures (the photos to choose from)."""
        self.patient_id = patient_id
        if patient_id is None or self.ctx.service is None or self.ctx.session is None:
            self.captures = []
            self._fill_choice()
            return
        service, session = self.ctx.service, self.ctx.session
        self.ctx.run_data(lambda: service.history(session, patient_id=patient_id),
                          lambda rows: self._captures_read(patient_id, rows), self.message.error)

    def _captures_read(self, patient_id: int, rows: list[CaptureSummary]) -> None:
        if patient_id == self.patient_id:
            self.captures = list(rows)
            self._fill_choice()

    def show_lesion(self, lesion: LesionInfo | None) -> None:
        """Show ``lesion``'s overview photo and mark (or the choice to set one)."""
        self.lesion, self.shown_id = lesion, None
        self.view.clear()
        self._fill_choice()
        self._chosen()

    def _fill_choice(self) -> None:
        tr = self.ctx.tr
        wanted = self.lesion.overview_capture_id if self.lesion is not None else None
        self.choice.blockSignals(True)
        self.choice.clear()
        self.choice.addItem(tr("ui.lesions.overview_none"), None)
        for capture in self.captures:
            self.choice.addItem(tr("ui.lesions.overview_item", id=capture.capture_id,
                                   time=local_time(capture.capture_time),
                                   site=tr(f"ui.site.{capture.body_site}")),
                                capture.capture_id)
        if wanted is not None and self.choice.findData(wanted) < 0:  # beyond the list's limit
            self.choice.addItem(f"#{wanted}", wanted)
        shown = self.shown_id if self.shown_id is not None else wanted
        self.choice.setCurrentIndex(max(0, self.choice.findData(shown)))
        self.choice.blockSignals(False)
        self._update_state()

    def choose(self, capture_id: int | None) -> None:
        """Show one of the patient's captures as the photo to mark (keyboard users, tests)."""
        self.choice.setCurrentIndex(max(0, self.choice.findData(capture_id)))

    def _chosen(self) -> None:
        capture_id = self.choice.currentData()
        if capture_id is None or self.ctx.service is None or self.ctx.session is None:
            self.shown_id = None
            self.view.clear()
            self._show_caption()
            self._update_state()
            return
        if capture_id == self.shown_id and not self.view.image.isNull():
            self._show_caption()
            return
        service, session = self.ctx.service, self.ctx.session
        self.ctx.run_data(lambda: service.thumbnails(session, [capture_id], max_side=PHOTO_SIDE),
                          lambda photos: self._photo_read(capture_id, photos), self.message.error)

    def _photo_read(self, capture_id: int, photos: dict[int, object]) -> None:
        if self.choice.currentData() != capture_id:
            return  # another photo was chosen meanwhile
        self.shown_id = capture_id
        self.view.set_array(photos[capture_id])  # type: ignore[arg-type]
        self._show_caption()
        self._update_state()

    def _show_caption(self) -> None:
        tr, lesion = self.ctx.tr, self.lesion
        marked = (lesion is not None and self.shown_id is not None
                  and lesion.overview_capture_id == self.shown_id)
        self.view.set_mark(lesion.overview_point if marked and lesion is not None else None)
        if self.shown_id is None:
            self.view.set_caption("")
        elif marked:
            self.view.set_caption(tr("ui.lesions.overview_marked", id=self.shown_id))
        else:
            self.view.set_caption(tr("ui.lesions.overview_click"))

    def _update_state(self) -> None:
        allowed = self.lesion is not None and self.ctx.allows(can_capture)
        self.choice.setEnabled(self.lesion is not None)
        self.view.set_clickable(allowed and self.shown_id is not None
                                and not self.view.image.isNull())
        self.clear_button.setEnabled(allowed and self.lesion is not None
                                     and self.lesion.overview_capture_id is not None)

    # -- changes --------------------------------------------------------------------------

    def mark(self, x: float, y: float) -> None:
        """Store the shown photo as the lesion's overview, marked at ``x``/``y`` (0..1)."""
        lesion, capture_id = self.lesion, self.shown_id
        if lesion is None or capture_id is None or self.ctx.service is None \
                or self.ctx.session is None:
            return
        service, session = self.ctx.service, self.ctx.session
        self.ctx.run_data(
            lambda: LesionService(service).set_overview(session, lesion.id, capture_id, x, y),
            lambda info: self._stored(info, "ui.lesions.overview_saved"), self.message.error)

    def clear(self) -> None:
        """Remove the lesion's overview photo and its mark."""
        lesion = self.lesion
        if lesion is None or self.ctx.service is None or self.ctx.session is None:
            return
        service, session = self.ctx.service, self.ctx.session
        self.clear_button.setEnabled(False)
        self.ctx.run_data(
            lambda: LesionService(service).set_overview(session, lesion.id, None),
            lambda info: self._stored(info, "ui.lesions.overview_cleared"), self._failed)

    def _stored(self, info: LesionInfo, key: str) -> None:
        if self.lesion is not None and info.id == self.lesion.id:
            self.lesion = info
            if info.overview_capture_id is None:
                self.shown_id = None
            self._fill_choice()
            self._chosen()
        self.message.show_message(self.ctx.tr(key), "success")
        self.changed.emit(info)

    def _failed(self, message: str) -> None:
        self._update_state()
        self.message.error(message)

    def reset(self) -> None:
        """Forget the patient and the photo (logout)."""
        self.lesion, self.patient_id, self.captures, self.shown_id = None, None, [], None
        self.view.clear()
        self._fill_choice()
        self._show_caption()
