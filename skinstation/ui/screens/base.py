"""The base class of every screen."""

from __future__ import annotations

from PySide6.QtCore import Signal
from PySide6.QtWidgets import QWidget

from skinstation.ui.context import StationContext


class Screen(QWidget):
    """One page of the station window.

    Subclasses set :attr:`screen_id` and :attr:`title_key`, build their widgets, and override
    the hooks. Every text is set in :meth:`retranslate` so a language switch redraws it.

    Signals:
        navigate: Ask the window to show another screen (by id).
    """

    screen_id = ""
    title_key = ""
    navigate = Signal(str)

    def __init__(self, ctx: StationContext, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.ctx = ctx
        self.setObjectName(f"{self.screen_id}Screen")

    def retranslate(self) -> None:
        """Set every visible text in ``ctx.language``."""

    def on_shown(self) -> None:
        """The screen became the visible one (refresh data here)."""

    def may_leave(self, target: str) -> bool:
        """Whether the window may switch from this screen to ``target`` (e.g. unsaved edits)."""
        return True

    def on_hidden(self) -> None:
        """Another screen became visible."""

    def reset(self) -> None:
        """Forget everything about patients (logout, or the lock passed to another operator)."""
