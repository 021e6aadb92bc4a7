"""The decision banner and the probability bar charts of the result screen.

Each decision has a colour *and* a shape *and* words, so it never depends on colour vision:
suspected skin cancer is a red triangle, indeterminate an amber diamond, other skin disease a
blue square, likely benign a green circle, not assessable a grey ring.

Every percentage is written by :func:`~skinstation.services.result_text.percent` (never a
rounded "100%" or "0%").
"""

from __future__ import annotations

from collections.abc import Sequence

from PySide6.QtCore import QEvent, QPointF, QRectF, QSize, Qt
from PySide6.QtGui import (
    QColor,
    QFont,
    QPainter,
    QPaintEvent,
    QPen,
    QPolygonF,
    QResizeEvent,
)
from PySide6.QtWidgets import QFrame, QHBoxLayout, QLabel, QSizePolicy, QVBoxLayout, QWidget

from skinstation.services.result_text import percent
from skinstation.ui.widgets.text_wrap import wrap_text

DECISION_STYLE: dict[str, tuple[str, str, str]] = {
    # decision: (shape, foreground, background)
    "skin_cancer": ("triangle", "#a4161a", "#fde8e8"),
    "indeterminate": ("diamond", "#8a5300", "#fff4dc"),
    "other_disease": ("square", "#1d4e89", "#e6eefa"),
    "benign": ("circle", "#1e6b3a", "#e5f4ea"),
    "not_assessable": ("ring", "#4a4f55", "#eceef0"),
}
NEUTRAL = ("ring", "#4a4f55", "#eceef0")


class ShapeIcon(QWidget):
    """A filled geometric shape in a colour (the decision's non-colour cue)."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.shape, self.colour = "ring", QColor("#4a4f55")
        self.setFixedSize(QSize(56, 56))

    def set_shape(self, shape: str, colour: str) -> None:
        """Draw ``shape`` (triangle, diamond, square, circle, ring) in ``colour``."""
        self.shape, self.colour = shape, QColor(colour)
        self.update()

    def paintEvent(self, event: QPaintEvent) -> None:
        """Draw the shape."""
        painter = QPainter(self)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        box = QRectF(self.rect()).adjusted(6, 6, -6, -6)
        painter.setPen(QPen(self.colour, 4))
        painter.setBrush(self.colour)
        c = box.center()
        if self.shape == "triangle":
            painter.drawPolygon(QPolygonF([QPointF(c.x(), box.top()), box.bottomRight(),
                                           box.bottomLeft()]))
            painter.setPen(QPen(QColor("white"), 5, Qt.PenStyle.SolidLine, Qt.PenCapStyle.RoundCap))
            painter.drawLine(QPointF(c.x(), box.top() + 16), QPointF(c.x(), box.bottom() - 16))
            painter.drawPoint(QPointF(c.x(), box.bottom() - 7))
        elif self.shape == "diamond":
            painter.drawPolygon(QPolygonF([QPointF(c.x(), box.top()), QPointF(box.right(), c.y()),
                                           QPointF(c.x(), box.bottom()),
                                           QPointF(box.left(), c.y())]))
        elif self.shape == "square":
            painter.drawRect(box.adjusted(4, 4, -4, -4))
        elif self.shape == "circle":
            painter.drawEllipse(box)
        else:
            painter.setBrush(Qt.BrushStyle.NoBrush)
            painter.drawEllipse(box.adjusted(3, 3, -3, -3))


class DecisionBanner(QFrame):
    """The decision in large words, with its shape and colour, and the referral flag."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("decisionBanner")
        self.setFrameShape(QFrame.Shape.StyledPanel)
        self.icon = ShapeIcon(self)
        self.title = QLabel(self)
        self.title.setObjectName("decisionText")
        font = QFont(self.title.font())
        font.setPointSizeF(max(font.pointSizeF(), 10) * 2.0)
        font.setBold(True)
        self.title.setFont(font)
        self.title.setWordWrap(True)
        self.referral = QLabel(self)
        self.referral.setObjectName("referralFlag")
        self.referral.setWordWrap(True)
        self.referral.setVisible(False)
        self.detail = QLabel(self)
        self.detail.setObjectName("decisionDetail")
        self.detail.setWordWrap(True)
        self.detail.setVisible(False)
        text_column = QVBoxLayout()
        text_column.addWidget(self.title)
        text_column.addWidget(self.referral)
        text_column.addWidget(self.detail)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(16, 12, 16, 12)
        layout.addWidget(self.icon, 0, Qt.AlignmentFlag.AlignTop)
        layout.addLayout(text_column, 1)
        self.decision = self.style_key = ""

    def set_decision(self, decision: str, words: str, referral_text: str = "",
                     detail: str = "", style: str | None = None) -> None:
        """Show ``decision`` as ``words``, with the safety flag and a caution under them.

        Args:
            decision: The rule decision (also the colour and shape unless ``style``).
            words: The large words.
            referral_text: The safety-referral flag (non-empty: shown in red with ▲).
            detail: A caution line (e.g. a notable skin-cancer class), or "".
            style: The colour and shape key when it differs from ``decision`` (a safety
                referral shows a benign decision in the skin-cancer style).
        """
        self.decision, self.style_key = decision, style or decision
        shape, foreground, background = DECISION_STYLE.get(self.style_key, NEUTRAL)
        self.icon.set_shape(shape, foreground)
        self.title.setText(words)
        self.setStyleSheet(
            f"QFrame#decisionBanner {{ background: {background}; border: 3px solid {foreground};"
            f" border-radius: 10px; }} QLabel#decisionText {{ color: {foreground}; }}"
            " QLabel#referralFlag { color: #a4161a; font-weight: bold; }"
            f" QLabel#decisionDetail {{ color: {foreground}; font-weight: bold; }}")
        self.referral.setText(f"▲ {referral_text}" if referral_text else "")
        self.referral.setVisible(bool(referral_text))
        self.detail.setText(detail)
        self.detail.setVisible(bool(detail))
        accessible = words + "".join(f". {line}" for line in (referral_text, detail) if line)
        self.setAccessibleName(accessible)

    def clear(self) -> None:
        """Empty the banner."""
        self.set_decision("", "")


class ProbabilityBars(QWidget):
    """A horizontal bar chart: one labelled bar with its percentage per item.

    A row may carry a marker (a threshold, drawn as a dark vertical line across its bar). A
    label too long for its column wraps onto further lines (the row grows); only a label
    needing more than :attr:`MAX_LABEL_LINES` lines is shortened, and :meth:`elided_texts`
    lists it.

    Args:
        object_name: Object name.
        highlight: Colour of the bars.
        parent: Parent widget.
    """

    ROW_HEIGHT = 30
    """Height of a row whose label fits on one line (rows with wrapped labels are taller)."""
    MAX_LABEL_LINES = 4

    def __init__(self, object_name: str, highlight: str = "#3b6ea8",
                 parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName(object_name)
        self.highlight = QColor(highlight)
        self.items: list[tuple[str, float, str]] = []
        self.markers: dict[str, float] = {}
        self._rows: list[tuple[list[str], int]] = []
        self._elided: list[str] = []
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)
        self.setMinimumWidth(260)

    def set_items(self, items: Sequence[tuple[str, float]] | Sequence[tuple[str, float, str]],
                  markers: dict[str, float] | None = None) -> None:
        """Show ``(label, probability[, colour])`` rows in the given order.

        Args:
            items: The rows.
            markers: Row label → a value marked on that row's bar (e.g. a threshold).
        """
        self.items = [(it[0], float(it[1]), it[2] if len(it) > 2 else "")  # type: ignore[misc]
                      for it in items]
        self.markers = dict(markers or {})
        self._relayout()
        self.setAccessibleName("; ".join(f"{label} {text}"
                                         for label, text in self.texts().items()))
        self.update()

    def values(self) -> dict[str, float]:
        """Label → probability as shown."""
        return {label: p for label, p, _ in self.items}

    def texts(self) -> dict[str, str]:
        """Label → the percentage written beside its bar."""
        return {label: percent(p) for label, p, _ in self.items}

    def elided_texts(self) -> list[str]:
        """The labels that had to be shortened at the current width (normally none)."""
        return list(self._elided)

    def row_lines(self) -> list[list[str]]:
        """Each row's label as drawn, one string per line."""
        return [lines for lines, _ in self._rows]

    def sizeHint(self) -> QSize:
        """Wide enough for long class names."""
        return QSize(420, self._height())

    # -- geometry -------------------------------------------------------------------------

    def _columns(self, width: int) -> tuple[int, int, int]:
        metrics = self.fontMetrics()
        label_width = min(int(width * 0.55), max((metrics.horizontalAdvance(label)
                                                  for label, _, _ in self.items), default=0) + 12)
        value_width = metrics.horizontalAdvance(">99%") + 12
        return label_width, value_width, max(20, width - label_width - value_width - 8)

    def _relayout(self) -> None:
        """Wrap the labels for the current width and size the widget to its rows."""
        width = self.width() if self.width() > 0 else self.sizeHint().width()
        label_width = self._columns(width)[0]
        spacing = self.fontMetrics().lineSpacing()
        self._rows, self._elided = [], []
        for label, _, _ in self.items:
            lines, elided = wrap_text(self.font(), label, label_width - 8,
                                      self.MAX_LABEL_LINES)
            if elided:
                self._elided.append(label)
            self._rows.append((lines, max(self.ROW_HEIGHT, len(lines) * spacing + 10)))
        self.setFixedHeight(self._height())

    def _height(self) -> int:
        return max(self.ROW_HEIGHT, sum(height for _, height in self._rows)) + 8

    def resizeEvent(self, event: QResizeEvent) -> None:
        """Wrap the labels again for the new width."""
        super().resizeEvent(event)
        if event.size().width() != event.oldSize().width():
            self._relayout()

    def changeEvent(self, event: QEvent) -> None:
        """Wrap the labels again when the font changes (stylesheet, language)."""
        super().changeEvent(event)
        if event.type() == QEvent.Type.FontChange:
            self._relayout()

    def paintEvent(self, event: QPaintEvent) -> None:
        """Draw label, bar and percentage for each row."""
        painter = QPainter(self)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        label_width, value_width, bar_width = self._columns(self.width())
        spacing = painter.fontMetrics().lineSpacing()
        top = 4
        for (label, probability, colour), (lines, height) in zip(self.items, self._rows,
                                                                 strict=False):
            middle = top + (height - 6) / 2
            bar_top = middle - (self.ROW_HEIGHT - 14) / 2
            painter.setPen(QColor("#1f2328"))
            text_top = middle - len(lines) * spacing / 2
            for number, line in enumerate(lines):
                painter.drawText(QRectF(0, text_top + number * spacing, label_width - 8, spacing),
                                 Qt.AlignmentFlag.AlignVCenter | Qt.AlignmentFlag.AlignLeft, line)
            track = QRectF(label_width, bar_top, bar_width, self.ROW_HEIGHT - 14)
            painter.setPen(Qt.PenStyle.NoPen)
            painter.setBrush(QColor("#e6e9ed"))
            painter.drawRoundedRect(track, 4, 4)
            filled = QRectF(track)
            filled.setWidth(track.width() * max(0.0, min(1.0, probability)))
            painter.setBrush(QColor(colour) if colour else self.highlight)
            painter.drawRoundedRect(filled, 4, 4)
            if label in self.markers:
                x = track.left() + track.width() * max(0.0, min(1.0, self.markers[label]))
                painter.setPen(QPen(QColor("#1f2328"), 3))
                painter.drawLine(QPointF(x, bar_top - 4),
                                 QPointF(x, bar_top + self.ROW_HEIGHT - 10))
            painter.setPen(QColor("#1f2328"))
            painter.drawText(QRectF(label_width + bar_width + 8, middle - self.ROW_HEIGHT / 2,
                                    value_width, self.ROW_HEIGHT),
                             Qt.AlignmentFlag.AlignVCenter | Qt.AlignmentFlag.AlignRight,
                             percent(probability))
            top += height
