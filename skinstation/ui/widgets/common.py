"""Small building blocks shared by the screens: labelled controls and the message bar."""

from __future__ import annotations

from collections.abc import Callable

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QAbstractButton, QLabel, QPushButton, QSizePolicy, QWidget

MESSAGE_ICONS = {"info": "ℹ", "success": "✔", "warning": "⚠", "error": "✖"}


def name_control(widget: QWidget, text: str, description: str = "") -> None:
    """Give a control its accessible name (and description) for screen readers and tests."""
    widget.setAccessibleName(text)
    if description:
        widget.setAccessibleDescription(description)
        widget.setToolTip(description)


def set_button_text(button: QAbstractButton, text: str, description: str = "") -> None:
    """Set a button's visible text and its accessible name together."""
    button.setText(text)
    name_control(button, text.replace("&", ""), description)


def make_button(object_name: str, role: str = "", parent: QWidget | None = None) -> QPushButton:
    """A touch-sized push button (``role``: ``primary``, ``danger`` or ``""``, for the QSS)."""
    button = QPushButton(parent)
    button.setObjectName(object_name)
    if role:
        button.setProperty("role", role)
    button.setMinimumHeight(48)
    button.setCursor(Qt.CursorShape.PointingHandCursor)
    button.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
    return button


def heading(object_name: str = "heading", parent: QWidget | None = None) -> QLabel:
    """A screen heading label."""
    label = QLabel(parent)
    label.setObjectName(object_name)
    label.setProperty("class", "heading")
    label.setWordWrap(True)
    return label


class MessageBar(QLabel):
    """A one-line message in the window: info, success, warning or error, icon plus words.

    Colour is never the only cue: each kind starts with its own symbol and the text says what
    happened. Screen readers get the same text through the accessible name.
    """

    def __init__(self, object_name: str = "message", parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName(object_name)
        self.setWordWrap(True)
        self.setTextFormat(Qt.TextFormat.PlainText)
        self.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.setSizePolicy(QSizePolicy.Policy.Preferred, QSizePolicy.Policy.Minimum)
        self.kind = ""
        self.clear_message()

    def show_message(self, message: str, kind: str = "info") -> None:
        """Show ``message`` (kind: ``info``, ``success``, ``warning`` or ``error``)."""
        self.kind = kind
        self.setProperty("kind", kind)
        self.setText(f"{MESSAGE_ICONS.get(kind, '')}  {message}")
        self.setAccessibleName(f"{kind}: {message}")
        self.style().unpolish(self)
        self.style().polish(self)
        self.setVisible(True)

    def error(self, message: str) -> None:
        """Show an error message."""
        self.show_message(message, "error")

    def clear_message(self) -> None:
        """Hide the bar."""
        self.kind = ""
        self.setText("")
        self.setAccessibleName("")
        self.setVisible(False)

    @property
    def message(self) -> str:
        """The message text without its symbol."""
        return self.text().split("  ", 1)[-1] if self.text() else ""


def text_or(tr: Callable[..., str], key: str, fallback: str) -> str:
    """``tr(key)``, or ``fallback`` when there is no text for ``key`` (e.g. a custom site)."""
    try:
        return tr(key)
    except KeyError:
        return fallback
