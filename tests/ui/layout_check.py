"""Finding text a person cannot read whole: labels, buttons and choices cut off by their layout.

Used by ``tests/ui/test_layouts.py`` on every screen, in English and Korean, at the window sizes
clinics run (1280×800, 1024×700) and at 150% scaling (with ``SKINSTATION_SCREENSHOTS_DIR`` set,
that test keeps a PNG of each).
"""

from __future__ import annotations

from dataclasses import dataclass

from PySide6.QtCore import QPoint, QRect, Qt
from PySide6.QtGui import Qt as GuiQt
from PySide6.QtWidgets import (
    QAbstractButton,
    QAbstractScrollArea,
    QComboBox,
    QLabel,
    QWidget,
)

SLACK = 2
"""Pixels of rounding a measurement may be off by."""

COMBO_ARROW = 28
"""Room a combo box needs beside its text for the arrow and frame (Fusion style)."""


@dataclass(frozen=True)
class Clipped:
    """One widget whose text does not fit.

    Attributes:
        name: Object name (or class) of the widget, with its screen.
        text: The text that is cut off.
        needed: Width (or height) the text needs, in pixels.
        available: Width (or height) it has.
    """

    name: str
    text: str
    needed: int
    available: int

    def __str__(self) -> str:
        return f"{self.name}: {self.text!r} needs {self.needed}px, has {self.available}px"


def _name(widget: QWidget) -> str:
    parts = []
    current: QWidget | None = widget
    while current is not None and len(parts) < 3:
        parts.append(current.objectName() or type(current).__name__)
        current = current.parentWidget()
    return "/".join(reversed(parts))


def _longest_line(widget: QWidget, text: str) -> int:
    metrics = widget.fontMetrics()
    return max((metrics.horizontalAdvance(line) for line in text.splitlines()), default=0)


def _scrolled(widget: QWidget) -> bool:
    """Whether the widget lives inside a scroll area (it may be scrolled to, not cut off)."""
    parent = widget.parentWidget()
    while parent is not None:
        if isinstance(parent, QAbstractScrollArea):
            return True
        parent = parent.parentWidget()
    return False


def _label(label: QLabel) -> Clipped | None:
    text = label.text()
    if not text or label.textFormat() == Qt.TextFormat.RichText or GuiQt.mightBeRichText(text):
        return None
    inner = label.contentsRect()
    if label.wordWrap():
        needed = label.heightForWidth(label.width())
        if needed > label.height() + SLACK:
            return Clipped(_name(label), text, needed, label.height())
        return None
    needed = _longest_line(label, text)
    if needed > inner.width() + SLACK:
        return Clipped(_name(label), text, needed, inner.width())
    tall = label.fontMetrics().height() * len(text.splitlines())
    if tall > inner.height() + SLACK:
        return Clipped(_name(label) + " (height)", text, tall, inner.height())
    return None


def _button(button: QAbstractButton) -> Clipped | None:
    text = button.text().replace("&&", "\0").replace("&", "").replace("\0", "&")
    if not text:
        return None
    hint = button.sizeHint()
    if hint.width() > button.width() + SLACK:
        return Clipped(_name(button), text, hint.width(), button.width())
    if hint.height() > button.height() + SLACK:
        return Clipped(_name(button) + " (height)", text, hint.height(), button.height())
    return None


def _combo(combo: QComboBox) -> Clipped | None:
    text = combo.currentText()
    if not text:
        return None
    needed = _longest_line(combo, text) + COMBO_ARROW
    if needed > combo.width() + SLACK:
        return Clipped(_name(combo), text, needed, combo.width())
    return None


def _outside(widget: QWidget, window: QWidget) -> Clipped | None:
    """A widget reaching past the edge of its parent (or of any container up to the window)
    is cut off by it."""
    text = widget.text() if isinstance(widget, QLabel | QAbstractButton) else ""
    parent = widget.parentWidget()
    while parent is not None:
        box = QRect(widget.mapTo(parent, QPoint(0, 0)), widget.size())
        if not parent.rect().adjusted(-SLACK, -SLACK, SLACK, SLACK).contains(box):
            return Clipped(f"{_name(widget)} (past the edge of {_name(parent)})", text,
                           box.bottom(), parent.rect().bottom())
        if parent is window:
            return None
        parent = parent.parentWidget()
    return None


def _painted(widget: QWidget) -> list[Clipped]:
    """Texts a custom-painted widget had to shorten (it lists them in ``elided_texts()``)."""
    elided = getattr(widget, "elided_texts", None)
    if not callable(elided):
        return []
    return [Clipped(_name(widget) + " (painted, elided)", str(text), 0, 0) for text in elided()]


def clipped_widgets(window: QWidget) -> list[Clipped]:
    """Every visible label, button, choice and painted text of ``window`` that does not fit.

    Widgets inside a scroll area may reach past the window (they can be scrolled to), but
    their own text must still fit them.
    """
    found: list[Clipped] = []
    for widget in window.findChildren(QWidget):
        if not widget.isVisibleTo(window) or widget.width() <= 0:
            continue
        problem: Clipped | None = None
        if isinstance(widget, QLabel):
            problem = _label(widget)
        elif isinstance(widget, QAbstractButton):
            problem = _button(widget)
        elif isinstance(widget, QComboBox):
            problem = _combo(widget)
        else:
            found += _painted(widget)
            continue
        if problem is None and not _scrolled(widget):
            problem = _outside(widget, window)
        if problem is not None:
            found.append(problem)
    return found
