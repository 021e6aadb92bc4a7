"""Sync status (administrators and IT): outbox queue, last success, last error.

Reads an optional :class:`~skinstation.ui.sync_status.SyncStatusSource`; with none, the panel
says plainly that sync is not configured.
"""

from __future__ import annotations

from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QFormLayout, QLabel, QVBoxLayout, QWidget

from skinstation.ui.context import StationContext
from skinstation.ui.screens.base import Screen
from skinstation.ui.sync_status import SyncStatus
from skinstation.ui.widgets.capture_view import local_time
from skinstation.ui.widgets.common import MessageBar, heading, make_button, set_button_text


class SyncPanel(Screen):
    """Shows the sync state, refreshed every few seconds while visible."""

    screen_id = "sync"
    title_key = "ui.nav.sync"
    REFRESH_MS = 5000

    def __init__(self, ctx: StationContext, parent: QWidget | None = None) -> None:
        super().__init__(ctx, parent)
        self.status: SyncStatus | None = None
        self.title = heading("syncTitle", self)
        self.placeholder = QLabel(self)
        self.placeholder.setObjectName("syncPlaceholder")
        self.placeholder.setProperty("class", "placeholder")
        self.placeholder.setWordWrap(True)
        self.queue = QLabel(self)
        self.queue.setObjectName("syncQueue")
        self.success = QLabel(self)
        self.success.setObjectName("syncLastSuccess")
        self.error = QLabel(self)
        self.error.setObjectName("syncLastError")
        self.error.setWordWrap(True)
        self.form = QFormLayout()
        self.form.addRow(QLabel(self), self.queue)
        self.form.addRow(QLabel(self), self.success)
        self.form.addRow(QLabel(self), self.error)
        self.sync_now = make_button("syncNow", "primary", self)
        self.sync_now.clicked.connect(self._sync_now)
        self.message = MessageBar("syncMessage", self)
        layout = QVBoxLayout(self)
        layout.addWidget(self.title)
        layout.addWidget(self.placeholder)
        layout.addLayout(self.form)
        layout.addWidget(self.sync_now)
        layout.addWidget(self.message)
        layout.addStretch(1)
        self.timer = QTimer(self)
        self.timer.setInterval(self.REFRESH_MS)
        self.timer.timeout.connect(self.refresh)
        self._update()

    @property
    def configured(self) -> bool:
        """Whether a sync status source was given."""
        return self.ctx.sync is not None

    def retranslate(self) -> None:
        """See :meth:`Screen.retranslate`."""
        tr = self.ctx.tr
        self.title.setText(tr("ui.sync.title"))
        self.placeholder.setText(tr("ui.sync.not_configured"))
        for row, key in enumerate(("queue", "last_success", "last_error")):
            label = self.form.itemAt(row, QFormLayout.ItemRole.LabelRole).widget()
            label.setText(tr(f"ui.sync.{key}"))
        set_button_text(self.sync_now, tr("ui.sync.now"))
        self._update()

    def _update(self) -> None:
        tr, status = self.ctx.tr, self.status
        configured = self.configured
        self.placeholder.setVisible(not configured)
        for row in range(self.form.rowCount()):
            for role in (QFormLayout.ItemRole.LabelRole, QFormLayout.ItemRole.FieldRole):
                item = self.form.itemAt(row, role)
                if item is not None and item.widget() is not None:
                    item.widget().setVisible(configured)
        self.sync_now.setVisible(configured and hasattr(self.ctx.sync, "sync_now"))
        if not configured or status is None:
            return
        self.queue.setText(tr("ui.sync.queue_value", count=status.queue_length))
        self.success.setText(local_time(status.last_success) if status.last_success
                             else tr("ui.sync.never"))
        self.error.setText(f"✖ {status.last_error}" if status.last_error else tr("ui.sync.none"))

    def refresh(self) -> None:
        """Read the status in the data thread."""
        source = self.ctx.sync
        if source is None:
            return
        self.ctx.run_background(lambda: SyncStatus.of(source.status()), self._loaded,
                          self.message.error)

    def _loaded(self, status: SyncStatus) -> None:
        self.status = status
        self._update()

    def _sync_now(self) -> None:
        source = self.ctx.sync
        if source is None or not hasattr(source, "sync_now"):
            return
        self.sync_now.setEnabled(False)
        self.message.show_message(self.ctx.tr("ui.sync.running"), "info")

        def done(_result: object) -> None:
            self.sync_now.setEnabled(True)
            self.message.show_message(self.ctx.tr("ui.sync.done"), "success")
            self.refresh()

        def failed(message: str) -> None:
            self.sync_now.setEnabled(True)
            self.message.error(message)
            self.refresh()

        self.ctx.run_background(source.sync_now, done, failed)

    def on_shown(self) -> None:
        """Refresh now and every few seconds while visible."""
        self.refresh()
        if self.configured:
            self.timer.start()

    def on_hidden(self) -> None:
        """Stop refreshing."""
        self.timer.stop()
