"""The decision banner and the probability bar charts of the result screen.

Each decision has a colour *and* a shape *and* words, so it never depends on colour vision:
suspected skin cancer is a red triangle, indeterminate an amber diamond, other skin disease a
blue square, likely benign a green circle, not assessable a grey ring.
"""

from __future__ import annotations

from collections.abc import Sequence

from PySide6.QtCore import QPointF, QRectF, QSize, Qt
from PySide6.QtGui import QColor, QFont, QPainter, QPaintEvent, QPen, QPolygonF
from PySide6.QtWidgets import QFrame, QHBoxLayout, QLabel, QSizePolicy, QVBoxLayout, QWidget

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
        text_column = QVBoxLayout()
        text_column.addWidget(self.title)
        text_column.addWidget(self.referral)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(16, 12, 16, 12)
        layout.addWidget(self.icon, 0, Qt.AlignmentFlag.AlignTop)
        layout.addLayout(text_column, 1)
        self.decision = ""

    def set_decision(self, decision: str, words: str, referral_text: str = "") -> None:
        """Show ``decision`` as ``words``; ``referral_text`` (non-empty) shows the safety flag."""
        self.decision = decision
        shape, foreground, background = DECISION_STYLE.get(decision, NEUTRAL)
        self.icon.set_shape(shape, foreground)
        self.title.setText(words)
        self.setStyleSheet(
            f"QFrame#decisionBanner {{ background: {background}; border: 3px solid {foreground};"
            f" border-radius: 10px; }} QLabel#decisionText {{ color: {foreground}; }}"
            " QLabel#referralFlag { color: #a4161a; font-weight: bold; }")
        self.referral.setText(f"▲ {referral_text}" if referral_text else "")
        self.referral.setVisible(bool(referral_text))
        accessible = words + (f". {referral_text}" if referral_text else "")
        self.setAccessibleName(accessible)

    def clear(self) -> None:
        """Empty the banner."""
        self.set_decision("", "")


class ProbabilityBars(QWidget):
    """A horizontal bar chart: one labelled bar with its percentage per item.

    Args:
        object_name: Object name.
        highlight: Colour of the bars.
        parent: Parent widget.
    """

    ROW_HEIGHT = 30

    def __init__(self, object_name: str, highlight: str = "#3b6ea8",
                 parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName(object_name)
        self.highlight = QColor(highlight)
        self.items: list[tuple[str, float, str]] = []
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)
        self.setMinimumWidth(260)

    def set_items(self, items: Sequence[tuple[str, float]] | Sequence[tuple[str, float, str]]
                  ) -> None:
        """Show ``(label, probability[, colour])`` rows in the given order."""
        self.items = [(it[0], float(it[1]), it[2] if len(it) > 2 else "")  # type: ignore[misc]
                      for it in items]
        self.setFixedHeight(max(1, len(self.items)) * self.ROW_HEIGHT + 8)
        self.setAccessibleName("; ".join(f"{label} {p:.0%}" for label, p, _ in self.items))
        self.update()

    def values(self) -> dict[str, float]:
        """Label → probability as shown."""
        return {label: p for label, p, _ in self.items}

    def sizeHint(self) -> QSize:
        """Wide enough for long class names."""
        return QSize(420, max(1, len(self.items)) * self.ROW_HEIGHT + 8)

    def paintEvent(self, event: QPaintEvent) -> None:
        """Draw label, bar and percentage for each row."""
        painter = QPainter(self)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        metrics = painter.fontMetrics()
        width = self.width()
        label_width = min(int(width * 0.55), max((metrics.horizontalAdvance(label)
                                                  for label, _, _ in self.items), default=0) + 12)
        value_width = metrics.horizontalAdvance("100%") + 12
        bar_width = max(20, width - label_width - value_width - 8)
        for row, (label, probability, colour) in enumerate(self.items):
            top = 4 + row * self.ROW_HEIGHT
            text_rect = QRectF(0, top, label_width - 8, self.ROW_HEIGHT - 6)
            painter.setPen(QColor("#1f2328"))
            painter.drawText(text_rect, Qt.AlignmentFlag.AlignVCenter | Qt.AlignmentFlag.AlignLeft,
                             metrics.elidedText(label, Qt.TextElideMode.ElideRight,
                                                int(text_rect.width())))
            track = QRectF(label_width, top + 4, bar_width, self.ROW_HEIGHT - 14)
            painter.setPen(Qt.PenStyle.NoPen)
            painter.setBrush(QColor("#e6e9ed"))
            painter.drawRoundedRect(track, 4, 4)
            filled = QRectF(track)
            filled.setWidth(track.width() * max(0.0, min(1.0, probability)))
            painter.setBrush(QColor(colour) if colour else self.highlight)
            painter.drawRoundedRect(filled, 4, 4)
            painter.setPen(QColor("#1f2328"))
            painter.drawText(QRectF(label_width + bar_width + 8, top, value_width,
                                    self.ROW_HEIGHT - 6),
                             Qt.AlignmentFlag.AlignVCenter | Qt.AlignmentFlag.AlignRight,
                             f"{probability:.0%}")
