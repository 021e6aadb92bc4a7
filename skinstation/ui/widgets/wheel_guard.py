"""Keeps the mouse wheel from changing form values while the operator scrolls the page.

Qt's spin boxes and combo boxes take the wheel whenever the pointer is over them, so scrolling
a long form changed settings by accident (a sharpness threshold went 4.0 → 0.0, a new
account's role Staff → Administrator). :func:`guard_wheel` makes such controls take the wheel
only while they have the keyboard focus (clicked or tabbed into); otherwise the wheel event is
handed to the surrounding scroll area, which scrolls instead (Qt itself does not pass
synthesized wheel events on to parents, so the guard forwards it explicitly).
"""

from __future__ import annotations

from PySide6.QtCore import QEvent, QObject, Qt
from PySide6.QtGui import QWheelEvent
from PySide6.QtWidgets import (
    QAbstractScrollArea,
    QAbstractSpinBox,
    QApplication,
    QComboBox,
    QWidget,
)

GUARDED_TYPES = (QAbstractSpinBox, QComboBox)


class WheelGuard(QObject):
    """An event filter that hands wheel events over unfocused controls to the scroll area."""

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        """Keep the wheel from an unfocused control; the enclosing scroll area gets it."""
        if (event.type() != QEvent.Type.Wheel or not isinstance(watched, QWidget)
                or not isinstance(event, QWheelEvent) or watched.hasFocus()):
            return False
        area = scroll_area_of(watched)
        if area is None:
            event.ignore()  # a real (spontaneous) wheel event then goes to the parent
            return True
        viewport = area.viewport()
        forwarded = QWheelEvent(
            viewport.mapFromGlobal(event.globalPosition()), event.globalPosition(),
            event.pixelDelta(), event.angleDelta(), event.buttons(), event.modifiers(),
            event.phase(), event.inverted())
        QApplication.sendEvent(viewport, forwarded)
        event.accept()  # handled: not offered to the control or its parents again
        return True


def scroll_area_of(widget: QWidget) -> QAbstractScrollArea | None:
    """The nearest scroll area ``widget`` sits in (its viewport's owner), or None."""
    parent = widget.parentWidget()
    while parent is not None:
        owner = parent.parentWidget()
        if isinstance(owner, QAbstractScrollArea) and owner.viewport() is parent:
            return owner
        parent = owner
    return None


def guard_wheel(widget: QWidget) -> None:
    """Make ``widget`` take wheel events (and the focus by wheel) only while focused.

    The filter is parented to ``widget``, so it lives exactly as long; guarding twice is a
    no-op.
    """
    if widget.property("wheelGuarded"):
        return
    widget.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
    widget.installEventFilter(WheelGuard(widget))
    widget.setProperty("wheelGuarded", True)


def guard_wheel_in(root: QWidget) -> int:
    """Guard every spin box and combo box inside ``root``; returns how many were guarded.

    A combo box's line edit and a spin box's internal editor are guarded with their owner
    (they pass the wheel to it).
    """
    count = 0
    for widget in root.findChildren(QWidget):
        if isinstance(widget, GUARDED_TYPES) and not widget.property("wheelGuarded"):
            guard_wheel(widget)
            count += 1
    return count
