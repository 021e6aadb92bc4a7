"""The sync panel's enrollment form (administrators): code, engine URL and CA file.

A thin form over the sync source's ``enroll(session, code, engine_url, ca_file, config_file)``
(:meth:`~skinstation.ui.station_sync.StationSync.enroll`), which is called in a worker thread;
the engine's answer (e.g. an unknown code) is shown as it is. The token never passes through
the form: the source stores it in the OS keyring.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from PySide6.QtCore import Signal
from PySide6.QtWidgets import (
    QFileDialog,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QWidget,
)

from skinstation.ui.context import StationContext
from skinstation.ui.widgets.common import MessageBar, make_button, name_control, set_button_text

ROW_KEYS = ("ui.sync.enroll_code", "ui.sync.enroll_url", "ui.sync.enroll_ca")


class EnrollBox(QGroupBox):
    """Enrolls the station with the engine.

    Signals:
        enrolled: Emitted with the new credential after a successful enrollment.
    """

    enrolled = Signal(object)

    def __init__(self, ctx: StationContext, message: MessageBar,
                 parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.ctx = ctx
        self.message = message
        self.setObjectName("enrollBox")
        #: Returns the chosen CA file, or "" if cancelled (tests replace it).
        self.pick_ca_file: Callable[[], str] = self._pick_ca_file
        self.code = QLineEdit(self)
        self.code.setObjectName("enrollCode")
        self.url = QLineEdit(self)
        self.url.setObjectName("enrollUrl")
        self.ca_file = QLineEdit(self)
        self.ca_file.setObjectName("enrollCaFile")
        self.browse = make_button("enrollBrowse", "", self)
        self.browse.clicked.connect(self._browse)
        self.submit = make_button("enrollSubmit", "primary", self)
        self.submit.clicked.connect(self.enroll)
        ca_row = QHBoxLayout()
        ca_row.addWidget(self.ca_file, 1)
        ca_row.addWidget(self.browse)
        self.form = QFormLayout(self)
        self.form.addRow(QLabel(self), self.code)
        self.form.addRow(QLabel(self), self.url)
        self.form.addRow(QLabel(self), ca_row)
        self.form.addRow(self.submit)
        for field in (self.code, self.url, self.ca_file):
            field.setMinimumHeight(44)
        self.load(ctx.settings.sync.engine_url, ctx.settings.sync.ca_bundle)

    def load(self, engine_url: str, ca_file: str) -> None:
        """Prefill the URL and CA file (from the settings) unless already typed."""
        if not self.url.text():
            self.url.setText(engine_url)
        if not self.ca_file.text():
            self.ca_file.setText(ca_file)

    def retranslate(self) -> None:
        """Set every text in the current language."""
        tr = self.ctx.tr
        self.setTitle(tr("ui.sync.enroll_title"))
        fields = (self.code, self.url, self.ca_file)
        for row, (key, field) in enumerate(zip(ROW_KEYS, fields, strict=True)):
            item = self.form.itemAt(row, QFormLayout.ItemRole.LabelRole)
            label = item.widget() if item is not None else None
            assert isinstance(label, QLabel)
            label.setText(tr(key))
            label.setBuddy(field)
            name_control(field, tr(key))
        self.code.setPlaceholderText(tr("ui.sync.enroll_code_placeholder"))
        self.url.setPlaceholderText("https://engine.example.org")
        set_button_text(self.browse, tr("ui.sync.enroll_browse"))
        set_button_text(self.submit, tr("ui.sync.enroll"))

    def _pick_ca_file(self) -> str:
        path, _filter = QFileDialog.getOpenFileName(
            self, self.ctx.tr("ui.sync.enroll_ca"), self.ca_file.text(),
            self.ctx.tr("ui.sync.enroll_ca_filter"))
        return path

    def _browse(self) -> None:
        path = self.pick_ca_file()
        if path:
            self.ca_file.setText(path)

    def enroll(self) -> None:
        """Send the code to the engine (in the background thread)."""
        tr, source = self.ctx.tr, self.ctx.sync
        enroll = getattr(source, "enroll", None)
        if enroll is None:
            return
        code, url, ca_file = (self.code.text().strip(), self.url.text().strip(),
                              self.ca_file.text().strip())
        if not code or not url:
            self.message.error(tr("ui.sync.enroll_missing"))
            return
        session, config = self.ctx.require_session(), self.ctx.config_file
        self.submit.setEnabled(False)
        self.message.show_message(tr("ui.sync.enrolling"), "info")
        self.ctx.run_background(lambda: enroll(session, code, url, ca_file, config),
                                self._done, self._failed)

    def _done(self, credential: Any) -> None:
        self.submit.setEnabled(True)
        self.code.clear()
        service = self.ctx.service
        if service is not None:
            self.ctx.apply_settings(service.settings)  # the engine URL and CA file now in use
        self.message.show_message(self.ctx.tr(
            "ui.sync.enrolled", name=credential.station_name, url=credential.engine_url),
            "success")
        self.enrolled.emit(credential)

    def _failed(self, message: str) -> None:
        self.submit.setEnabled(True)
        self.message.error(self.ctx.tr("ui.sync.enroll_failed", detail=message))
