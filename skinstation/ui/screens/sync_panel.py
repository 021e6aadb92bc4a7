"""Sync status (administrators and IT): queue, last success, last error, refused captures.

The captures set aside as refused are listed with their reasons, and a "Retry refused" button
puts them back in the queue. Reads an optional
:class:`~skinstation.ui.sync_status.SyncStatusSource`; with none, the panel says plainly that
sync is not configured. Retrying is offered to accounts that may change the station's
configuration (administrators), and the source checks the session again.

While the source says no round can run (no engine URL, not enrolled, database opening) the
panel says so, hides "Sync now", and never reports a sync as finished; a round that ends with
an error is reported as failed. Administrators of a station not enrolled get the enrollment
form (:class:`~skinstation.ui.screens.sync_enroll.EnrollBox`).
"""

from __future__ import annotations

from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QFormLayout, QLabel, QVBoxLayout, QWidget

from skinstation.auth import can_change_station_settings
from skinstation.ui.context import StationContext
from skinstation.ui.screens.base import Screen
from skinstation.ui.screens.sync_enroll import EnrollBox
from skinstation.ui.sync_status import NOT_CONFIGURED, NOT_ENROLLED, STARTING, SyncStatus
from skinstation.ui.widgets.capture_view import local_time
from skinstation.ui.widgets.common import MessageBar, heading, make_button, set_button_text

ROW_KEYS = ("ui.sync.queue", "ui.sync.last_success", "ui.sync.last_error", "ui.sync.refused")
SHOWN_REASONS = 5
STATE_KEYS = {NOT_CONFIGURED: "ui.sync.not_configured", NOT_ENROLLED: "ui.sync.not_enrolled",
              STARTING: "ui.sync.starting"}


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
        self.refused = QLabel(self)
        self.refused.setObjectName("syncRefused")
        self.refused.setWordWrap(True)
        self.form = QFormLayout()
        for value in (self.queue, self.success, self.error, self.refused):
            self.form.addRow(QLabel(self), value)
        self.sync_now = make_button("syncNow", "primary", self)
        self.sync_now.clicked.connect(self._sync_now)
        self.retry = make_button("syncRetryRefused", "", self)
        self.retry.clicked.connect(self._retry_refused)
        self.message = MessageBar("syncMessage", self)
        self.enroll_box = EnrollBox(ctx, self.message, self)
        self.enroll_box.enrolled.connect(lambda _credential: self.refresh())
        layout = QVBoxLayout(self)
        layout.addWidget(self.title)
        layout.addWidget(self.placeholder)
        layout.addLayout(self.form)
        layout.addWidget(self.sync_now)
        layout.addWidget(self.retry)
        layout.addWidget(self.enroll_box)
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
        for row, key in enumerate(ROW_KEYS):
            label = self.form.itemAt(row, QFormLayout.ItemRole.LabelRole).widget()
            label.setText(tr(key))
        set_button_text(self.sync_now, tr("ui.sync.now"))
        set_button_text(self.retry, tr("ui.sync.retry"))
        self.enroll_box.retranslate()
        self._update()

    def _update(self) -> None:
        tr, status = self.ctx.tr, self.status
        configured = self.configured
        state = NOT_CONFIGURED if not configured else status.state if status else STARTING
        self.placeholder.setText(tr(STATE_KEYS.get(state, "ui.sync.not_configured")))
        self.placeholder.setVisible(state in STATE_KEYS)
        for row in range(self.form.rowCount()):
            for role in (QFormLayout.ItemRole.LabelRole, QFormLayout.ItemRole.FieldRole):
                item = self.form.itemAt(row, role)
                if item is not None and item.widget() is not None:
                    item.widget().setVisible(configured)
        ready = status is not None and status.ready
        self.sync_now.setVisible(ready and hasattr(self.ctx.sync, "sync_now"))
        self.enroll_box.setVisible(state in (NOT_CONFIGURED, NOT_ENROLLED) and self.may_enroll)
        self.retry.setVisible(self.may_retry and status is not None
                              and bool(status.refused_captures))
        if not configured or status is None:
            return
        self.queue.setText(tr("ui.sync.queue_value", count=status.queue_length))
        self.success.setText(local_time(status.last_success) if status.last_success
                             else tr("ui.sync.never"))
        self.error.setText(f"✖ {status.error_text(tr)}" if status.last_error
                           else tr("ui.sync.none"))
        self.refused.setText(self._refused_text(status))

    @property
    def may_retry(self) -> bool:
        """Whether the source can retry refused captures and this operator may ask it to."""
        return (self.configured and hasattr(self.ctx.sync, "retry_refused")
                and self.ctx.allows(can_change_station_settings))

    @property
    def may_enroll(self) -> bool:
        """Whether the source can enroll the station and this operator may ask it to."""
        return (self.configured and hasattr(self.ctx.sync, "enroll")
                and self.ctx.allows(can_change_station_settings))

    def _refused_text(self, status: SyncStatus) -> str:
        tr, refused = self.ctx.tr, status.refused_captures
        if not refused:
            return tr("ui.sync.none")
        lines = [tr("ui.sync.refused_value", count=len(refused))]
        for capture_id, reason in list(refused.items())[:SHOWN_REASONS]:
            lines.append(tr("ui.sync.refused_reason", capture=capture_id, reason=reason))
        if len(refused) > SHOWN_REASONS:
            lines.append(tr("ui.sync.refused_more", count=len(refused) - SHOWN_REASONS))
        return "\n".join(lines)

    def refresh(self) -> None:
        """Read the status in the data thread."""
        source = self.ctx.sync
        if source is None:
            return
        self.ctx.run_background(lambda: SyncStatus.of(source.status()), self._loaded,
                          self.message.error)

    def _loaded(self, status: SyncStatus) -> None:
        self.status = status
        self.enroll_box.load(self.ctx.settings.sync.engine_url, self.ctx.settings.sync.ca_bundle)
        self._update()

    def _sync_now(self) -> None:
        source = self.ctx.sync
        if source is None or not hasattr(source, "sync_now"):
            return
        if self.status is not None and not self.status.ready:
            self.message.error(self.ctx.tr(STATE_KEYS[self.status.state]))
            return
        self.sync_now.setEnabled(False)
        self.message.show_message(self.ctx.tr("ui.sync.running"), "info")

        def done(result: object) -> None:
            self.sync_now.setEnabled(True)
            after = None if result is None else SyncStatus.of(result)
            if after is not None and after.last_error:
                self.message.error(self.ctx.tr("ui.sync.failed",
                                               error=after.error_text(self.ctx.tr)))
            else:
                self.message.show_message(self.ctx.tr("ui.sync.done"), "success")
            self.refresh()

        def failed(message: str) -> None:
            self.sync_now.setEnabled(True)
            self.message.error(message)
            self.refresh()

        self.ctx.run_background(source.sync_now, done, failed)

    def _retry_refused(self) -> None:
        retry = getattr(self.ctx.sync, "retry_refused", None)
        if retry is None or not self.may_retry:
            return
        session = self.ctx.require_session()
        self.retry.setEnabled(False)

        def done(retried: list[int]) -> None:
            self.retry.setEnabled(True)
            self.message.show_message(self.ctx.tr("ui.sync.retried", count=len(retried)),
                                      "success")
            self.refresh()

        def failed(message: str) -> None:
            self.retry.setEnabled(True)
            self.message.error(message)
            self.refresh()

        self.ctx.run_background(lambda: retry(session), done, failed)

    def on_shown(self) -> None:
        """Refresh now and every few seconds while visible."""
        self.refresh()
        if self.configured:
            self.timer.start()

    def on_hidden(self) -> None:
        """Stop refreshing."""
        self.timer.stop()
