"""Operator accounts (administrators): the list and a form to add staff and dermatologists."""

from __future__ import annotations

from PySide6.QtWidgets import (
    QComboBox,
    QFormLayout,
    QGroupBox,
    QLabel,
    QLineEdit,
    QListWidget,
    QVBoxLayout,
    QWidget,
)

from skinstation.auth import OperatorAccount, Role
from skinstation.ui.context import StationContext
from skinstation.ui.widgets.common import MessageBar, make_button, name_control, set_button_text


class OperatorsBox(QGroupBox):
    """Lists accounts and creates new ones (``StationService.create_operator``)."""

    def __init__(self, ctx: StationContext, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.ctx = ctx
        self.setObjectName("operatorsBox")
        self.accounts = QListWidget(self)
        self.accounts.setObjectName("operatorList")
        self.accounts.setMinimumHeight(120)
        self.username = QLineEdit(self)
        self.username.setObjectName("newUsername")
        self.display_name = QLineEdit(self)
        self.display_name.setObjectName("newDisplayName")
        self.role = QComboBox(self)
        self.role.setObjectName("newRole")
        self.password = QLineEdit(self)
        self.password.setObjectName("newPassword")
        self.password.setEchoMode(QLineEdit.EchoMode.Password)
        for field in (self.username, self.display_name, self.role, self.password):
            field.setMinimumHeight(44)
        self.create = make_button("createOperator", "primary", self)
        self.create.clicked.connect(self.create_operator)
        self.message = MessageBar("operatorMessage", self)
        self.form = QFormLayout()
        self.form.addRow(QLabel(self), self.username)
        self.form.addRow(QLabel(self), self.display_name)
        self.form.addRow(QLabel(self), self.role)
        self.form.addRow(QLabel(self), self.password)
        layout = QVBoxLayout(self)
        layout.addWidget(self.accounts)
        layout.addLayout(self.form)
        layout.addWidget(self.create)
        layout.addWidget(self.message)
        self.rows: list[OperatorAccount] = []

    def retranslate(self) -> None:
        """Set the texts in the current language."""
        tr = self.ctx.tr
        self.setTitle(tr("ui.operators.title"))
        name_control(self.accounts, tr("ui.operators.title"))
        for row, (key, field) in enumerate((("username", self.username),
                                            ("display_name", self.display_name),
                                            ("role", self.role), ("password", self.password))):
            label = tr(f"ui.operators.{key}")
            self.form.itemAt(row, QFormLayout.ItemRole.LabelRole).widget().setText(label)
            name_control(field, label)
        current = self.role.currentData()
        self.role.clear()
        for role in (Role.STAFF, Role.DERMATOLOGIST, Role.ADMIN):
            self.role.addItem(tr(f"ui.role.{role.value}"), role.value)
        self.role.setCurrentIndex(max(0, self.role.findData(current)) if current else 0)
        set_button_text(self.create, tr("ui.operators.create"))
        self._fill()

    def _fill(self) -> None:
        tr = self.ctx.tr
        self.accounts.clear()
        for account in self.rows:
            state = tr("ui.operators.disabled") if account.disabled else ""
            self.accounts.addItem(f"{account.display_name} ({account.username}) — "
                                  f"{tr(f'ui.role.{account.role.value}')} {state}".rstrip())

    def refresh(self) -> None:
        """Reload the accounts."""
        if self.ctx.service is None or self.ctx.session is None:
            return
        service, session = self.ctx.service, self.ctx.session
        self.ctx.run_data(lambda: service.list_operators(session), self._loaded,
                          self.message.error)

    def _loaded(self, rows: list[OperatorAccount]) -> None:
        self.rows = rows
        self._fill()

    def create_operator(self) -> None:
        """Create the account described by the form."""
        username, password = self.username.text().strip(), self.password.text()
        if not username or not password:
            self.message.error(self.ctx.tr("ui.login.missing"))
            return
        display = self.display_name.text().strip() or username
        role = Role(self.role.currentData())
        service, session = self.ctx.require_service(), self.ctx.require_session()
        self.create.setEnabled(False)
        self.ctx.run_data(
            lambda: service.create_operator(session, username, display, role, password),
            self._created, self._failed)

    def _created(self, account: OperatorAccount) -> None:
        self.create.setEnabled(True)
        for field in (self.username, self.display_name, self.password):
            field.clear()
        self.message.show_message(self.ctx.tr("ui.operators.created", name=account.username),
                                  "success")
        self.refresh()

    def _failed(self, message: str) -> None:
        self.create.setEnabled(True)
        self.password.clear()
        self.message.error(message)
