"""The idle lock: operator input anywhere in the application keeps the station unlocked."""

from __future__ import annotations

import time

from PySide6.QtCore import QEvent, QObject, QTimer, Signal
from PySide6.QtWidgets import QApplication

from skinstation.auth import SessionExpiredError
from skinstation.ui.context import StationContext

ACTIVITY_EVENTS = frozenset({QEvent.Type.KeyPress, QEvent.Type.MouseButtonPress,
                             QEvent.Type.TouchBegin, QEvent.Type.Wheel, QEvent.Type.MouseMove})
TOUCH_INTERVAL_S = 20.0
"""How often operator activity is passed on to the session (``Session.touch``)."""


class IdleLock(QObject):
    """Watches input application-wide; says when the configured idle time has passed.

    Signals:
        idle: No input for ``settings.idle_lock_minutes`` while someone was logged in.
        expired: The session ended by itself (its message).
    """

    idle = Signal()
    expired = Signal(str)

    def __init__(self, ctx: StationContext, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.ctx = ctx
        self._last_touch = 0.0
        self.timer = QTimer(self)
        self.timer.setSingleShot(True)
        self.timer.timeout.connect(self.idle)
        app = QApplication.instance()
        if app is not None:
            app.installEventFilter(self)

    def restart(self) -> None:
        """(Re)start counting from now with the configured idle time."""
        if self.ctx.session is None:
            return
        self._last_touch = time.monotonic()
        self.timer.start(max(1, round(self.ctx.settings.idle_lock_minutes * 60_000)))

    def stop(self) -> None:
        """Stop counting (nobody is logged in)."""
        self.timer.stop()

    def remove(self) -> None:
        """Stop watching input (the window is closing)."""
        self.timer.stop()
        app = QApplication.instance()
        if app is not None:
            app.removeEventFilter(self)

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        """Count key presses, clicks, touches and mouse moves as activity."""
        if event.type() in ACTIVITY_EVENTS and self.ctx.session is not None:
            self.timer.start()
            now = time.monotonic()
            if now - self._last_touch > TOUCH_INTERVAL_S:
                self._last_touch = now
                try:
                    self.ctx.session.touch()
                except SessionExpiredError as exc:
                    QTimer.singleShot(0, lambda message=str(exc): self.expired.emit(message))
        return False
