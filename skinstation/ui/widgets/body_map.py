"""The body map: front and back silhouettes with clickable regions and the lesions on them.

Each region maps to one of the station's body-site codes (those of
:data:`skinstation.ui.screens.patient.BODY_REGIONS`); a click gives the site, the view
(``front``/``back``), the patient's side (``left``/``right``/``midline``) and the point
(0..1 across and down the figure). Lesions are drawn as numbered dots; a click on a dot
selects that lesion instead.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from PySide6.QtCore import QPointF, QRectF, QSize, Qt, Signal
from PySide6.QtGui import QColor, QMouseEvent, QPainter, QPainterPath, QPaintEvent, QPen
from PySide6.QtWidgets import QSizePolicy, QWidget

VIEWS = ("front", "back")
MIDLINE = 0.035
"""Points this close to the figure's centre line (fraction of its width) are ``midline``."""
DOT_RADIUS = 9.0

Shape = tuple[str, float, float, float, float]
"""``("ellipse" | "rect", x, y, width, height)`` in figure units (0..1)."""

_ARMS: tuple[Shape, ...] = (("rect", 0.25, 0.18, 0.10, 0.30), ("rect", 0.65, 0.18, 0.10, 0.30))
_HANDS: tuple[Shape, ...] = (("ellipse", 0.25, 0.48, 0.10, 0.07),
                             ("ellipse", 0.65, 0.48, 0.10, 0.07))
_LEGS: tuple[Shape, ...] = (("rect", 0.37, 0.52, 0.125, 0.38), ("rect", 0.505, 0.52, 0.125, 0.38))
_FEET: tuple[Shape, ...] = (("ellipse", 0.35, 0.90, 0.145, 0.06),
                            ("ellipse", 0.505, 0.90, 0.145, 0.06))
_EARS: tuple[Shape, ...] = (("ellipse", 0.405, 0.055, 0.04, 0.06),
                            ("ellipse", 0.555, 0.055, 0.04, 0.06))
_NECK: tuple[Shape, ...] = (("rect", 0.46, 0.13, 0.08, 0.05),)

REGIONS: dict[str, tuple[tuple[str, tuple[Shape, ...]], ...]] = {
    "front": (
        ("ear", _EARS),
        ("scalp", (("ellipse", 0.44, 0.01, 0.12, 0.05),)),
        ("face", (("ellipse", 0.44, 0.02, 0.12, 0.12),)),
        ("neck", _NECK),
        ("chest", (("rect", 0.36, 0.18, 0.28, 0.15),)),
        ("abdomen", (("rect", 0.37, 0.33, 0.26, 0.14),)),
        ("genital", (("rect", 0.44, 0.47, 0.12, 0.05),)),
        ("upper_extremity", _ARMS),
        ("hand", _HANDS),
        ("lower_extremity", (*_LEGS, ("rect", 0.37, 0.47, 0.26, 0.05))),
        ("foot", _FEET),
    ),
    "back": (
        ("ear", _EARS),
        ("scalp", (("ellipse", 0.44, 0.02, 0.12, 0.12),)),
        ("neck", _NECK),
        ("back", (("rect", 0.36, 0.18, 0.28, 0.29),)),
        ("upper_extremity", _ARMS),
        ("hand", _HANDS),
        ("lower_extremity", (*_LEGS, ("rect", 0.37, 0.47, 0.26, 0.05))),
        ("foot", _FEET),
    ),
}
"""Each view's regions, first match wins (ears and the scalp cap lie over the face)."""


def _path(shapes: Sequence[Shape], box: QRectF) -> QPainterPath:
    path = QPainterPath()
    for kind, x, y, width, height in shapes:
        rect = QRectF(box.left() + x * box.width(), box.top() + y * box.height(),
                      width * box.width(), height * box.height())
        if kind == "ellipse":
            path.addEllipse(rect)
        else:
            path.addRoundedRect(rect, 4.0, 4.0)
    return path


def side_of(view: str, x: float) -> str:
    """The patient's side at ``x`` (0..1 across the figure) in ``view``."""
    if abs(x - 0.5) < MIDLINE:
        return "midline"
    viewer_left = x < 0.5
    return ("right" if viewer_left else "left") if view == "front" else (
        "left" if viewer_left else "right")


def site_at(view: str, x: float, y: float) -> str | None:
    """The body-site code at the point (0..1 of the figure) of ``view``, or None."""
    unit = QRectF(0.0, 0.0, 1.0, 1.0)
    for site, shapes in REGIONS[view]:
        if _path(shapes, unit).contains(QPointF(x, y)):
            return site
    return None


@dataclass(frozen=True)
class MapLesion:
    """A lesion drawn on the map.

    Attributes:
        lesion_id: The lesion.
        number: Its number on the map (1 for the patient's first).
        view: ``front`` or ``back``.
        x: Point across the figure (0..1).
        y: Point down the figure (0..1).
    """

    lesion_id: int
    number: int
    view: str
    x: float
    y: float


class BodyMap(QWidget):
    """Front and back silhouettes; click a region to pick a site and point.

    Signals:
        picked: ``(site, view, side, x, y)`` after a click on a region.
        lesion_clicked: The id of the lesion whose dot was clicked.
    """

    picked = Signal(str, str, str, float, float)
    lesion_clicked = Signal(int)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("bodyMap")
        self.setAccessibleName("bodyMap")
        self.setMinimumSize(QSize(150, 200))
        self.setMaximumWidth(240)
        self.setSizePolicy(QSizePolicy.Policy.Preferred, QSizePolicy.Policy.Expanding)
        self.setCursor(Qt.CursorShape.PointingHandCursor)
        self.lesions: list[MapLesion] = []
        self.selected_lesion: int | None = None
        self.site: str | None = None
        self.marker: tuple[str, float, float] | None = None
        self.view_titles = {"front": "front", "back": "back"}

    def sizeHint(self) -> QSize:
        """Two figures, each twice as tall as wide."""
        return QSize(170, 240)

    # -- state ----------------------------------------------------------------------------

    def set_view_titles(self, front: str, back: str) -> None:
        """The captions drawn under the figures (translated by the screen)."""
        self.view_titles = {"front": front, "back": back}
        self.update()

    def set_lesions(self, lesions: Sequence[MapLesion]) -> None:
        """The lesions to draw as numbered dots."""
        self.lesions = list(lesions)
        self.update()

    def set_selected(self, lesion_id: int | None) -> None:
        """Highlight one lesion's dot (None: none)."""
        self.selected_lesion = lesion_id
        self.update()

    def set_site(self, site: str | None, marker: tuple[str, float, float] | None = None) -> None:
        """Highlight a site's regions and mark a point (``(view, x, y)``) on it."""
        self.site, self.marker = site, marker
        self.update()

    # -- geometry -------------------------------------------------------------------------

    def figure_box(self, view: str) -> QRectF:
        """Where ``view``'s figure is drawn, in widget pixels (2:1 tall, side by side)."""
        caption = self.fontMetrics().height() + 6
        half = self.width() / 2.0
        height = max(10.0, self.height() - caption - 4.0)
        width = min(half - 8.0, height / 2.0)
        height = width * 2.0
        left = (half - width) / 2.0 + (half if view == "back" else 0.0)
        return QRectF(left, 2.0, width, height)

    def point_of(self, view: str, x: float, y: float) -> QPointF:
        """Widget pixels of a figure point (0..1)."""
        box = self.figure_box(view)
        return QPointF(box.left() + x * box.width(), box.top() + y * box.height())

    def site_point(self, site: str, view: str) -> QPointF:
        """Widget pixels of the centre of a site's first region in ``view`` (for clicks)."""
        for name, shapes in REGIONS[view]:
            if name == site:
                _kind, x, y, width, height = shapes[-1] if site == "ear" else shapes[0]
                return self.point_of(view, x + width / 2, y + height / 2)
        raise KeyError(f"{site} is not on the {view} view")

    def lesion_point(self, lesion_id: int) -> QPointF:
        """Widget pixels of a lesion's dot."""
        lesion = next(item for item in self.lesions if item.lesion_id == lesion_id)
        return self.point_of(lesion.view, lesion.x, lesion.y)

    def _hit(self, position: QPointF) -> tuple[str, float, float] | None:
        for view in VIEWS:
            box = self.figure_box(view)
            if box.contains(position):
                return (view, (position.x() - box.left()) / box.width(),
                        (position.y() - box.top()) / box.height())
        return None

    # -- events ---------------------------------------------------------------------------

    def mousePressEvent(self, event: QMouseEvent) -> None:
        """A dot selects its lesion; a region emits :attr:`picked`."""
        if event.button() != Qt.MouseButton.LeftButton:
            return
        position = event.position()
        for lesion in reversed(self.lesions):
            centre = self.point_of(lesion.view, lesion.x, lesion.y)
            if (centre - position).manhattanLength() <= DOT_RADIUS * 1.5:
                self.set_selected(lesion.lesion_id)
                self.lesion_clicked.emit(lesion.lesion_id)
                return
        hit = self._hit(position)
        if hit is None:
            return
        view, x, y = hit
        site = site_at(view, x, y)
        if site is None:
            return
        self.set_site(site, (view, x, y))
        self.picked.emit(site, view, side_of(view, x), x, y)

    def paintEvent(self, event: QPaintEvent) -> None:
        """Draw both figures, the chosen site, the marker and the lesion dots."""
        painter = QPainter(self)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        palette = self.palette()
        outline = QPen(palette.color(palette.ColorRole.WindowText), 1.2)
        fill, chosen = QColor(226, 232, 240), QColor(125, 178, 235)
        if not self.isEnabled():
            fill = QColor(238, 238, 238)
        for view in VIEWS:
            box = self.figure_box(view)
            for site, shapes in reversed(REGIONS[view]):
                painter.setPen(outline)
                painter.setBrush(chosen if site == self.site else fill)
                painter.drawPath(_path(shapes, box))
            painter.setPen(outline)
            caption = QRectF(box.left() - 40, box.bottom() + 2, box.width() + 80,
                             self.fontMetrics().height() + 4)
            painter.drawText(caption, Qt.AlignmentFlag.AlignCenter, self.view_titles[view])
        if self.marker is not None:
            view, x, y = self.marker
            painter.setPen(QPen(QColor(200, 40, 40), 2.0))
            painter.setBrush(Qt.BrushStyle.NoBrush)
            centre = self.point_of(view, x, y)
            painter.drawLine(centre - QPointF(6, 0), centre + QPointF(6, 0))
            painter.drawLine(centre - QPointF(0, 6), centre + QPointF(0, 6))
        for lesion in self.lesions:
            centre = self.point_of(lesion.view, lesion.x, lesion.y)
            selected = lesion.lesion_id == self.selected_lesion
            painter.setPen(QPen(QColor(20, 20, 20), 2.0 if selected else 1.0))
            painter.setBrush(QColor(230, 120, 20) if selected else QColor(90, 60, 160))
            painter.drawEllipse(centre, DOT_RADIUS, DOT_RADIUS)
            painter.setPen(QColor(255, 255, 255))
            painter.drawText(QRectF(centre.x() - DOT_RADIUS, centre.y() - DOT_RADIUS,
                                    2 * DOT_RADIUS, 2 * DOT_RADIUS),
                             Qt.AlignmentFlag.AlignCenter, str(lesion.number))
        painter.end()
