"""Operator accounts (administrators): the list, new accounts, managing the chosen one.

Adding staff and dermatologists; disabling or enabling the chosen account, unlocking it,
resetting its password.
"""

from __future__ import annotations

from collections.abc import Callable

from PySide6.QtWidgets import (
    QComboBox,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QListWidget,
    QVBoxLayout,
    QWidget,
)

from skinstation.auth import AuthError, OperatorAccount, Role
from skinstation.ui.context import StationContext
from skinstation.ui.screens.password_dialog import auth_message, returning_refusal
from skinstation.ui.widgets.common import MessageBar, make_button, name_control, set_button_text


class OperatorsBox(QGroupBox):
    """Lists accounts, creates new ones and manages the chosen one (``StationService``).

    The service decides (and audits) every change; this box only offers the actions that make
    sense for the chosen account: not disabling or resetting one's own, unlocking only a
    locked account.
    """

    def __init__(self, ctx: StationContext, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.ctx = ctx
        self.setObjectName("operatorsBox")
        self.accounts = QListWidget(self)
        self.accounts.setObjectName("operatorList")
        self.accounts.setMinimumHeight(120)
        self.accounts.currentRowChanged.connect(lambda _row: self._update_actions())
        self.toggle_button = make_button("toggleOperator", "", self)
        self.toggle_button.clicked.connect(self.toggle_disabled)
        self.unlock_button = make_button("unlockOperator", "", self)
        self.unlock_button.clicked.connect(self.unlock_operator)
        self.temporary = QLineEdit(self)
        self.temporary.setObjectName("temporaryPassword")
        self.temporary.setEchoMode(QLineEdit.EchoMode.Password)
        self.reset_button = make_button("resetPassword", "", self)
        self.reset_button.clicked.connect(self.reset_password)
        self.username = QLineEdit(self)
        self.username.setObjectName("newUsername")
        self.display_name = QLineEdit(self)
        self.display_name.setObjectName("newDisplayName")
        self.role = QComboBox(self)
        self.role.setObjectName("newRole")
        self.password = QLineEdit(self)
        self.password.setObjectName("newPassword")
        self.password.setEchoMode(QLineEdit.EchoMode.Password)
        for field in (self.username, self.display_name, self.role, self.password,
                      self.temporary):
            field.setMinimumHeight(44)
        self.create = make_button("createOperator", "primary", self)
        self.create.clicked.connect(self.create_operator)
        self.message = MessageBar("operatorMessage", self)
        actions = QHBoxLayout()
        actions.addWidget(self.toggle_button)
        actions.addWidget(self.unlock_button)
        self.reset_row = QFormLayout()
        self.reset_row.addRow(QLabel(self), self.temporary)
        self.form = QFormLayout()
        self.form.addRow(QLabel(self), self.username)
        self.form.addRow(QLabel(self), self.display_name)
        self.form.addRow(QLabel(self), self.role)
        self.form.addRow(QLabel(self), self.password)
        layout = QVBoxLayout(self)
        layout.addWidget(self.accounts)
        layout.addLayout(actions)
        layout.addLayout(self.reset_row)
        layout.addWidget(self.reset_button)
        layout.addLayout(self.form)
        layout.addWidget(self.create)
        layout.addWidget(self.message)
        self.rows: list[OperatorAccount] = []
        self._update_actions()

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
        label = tr("ui.operators.temporary_password")
        self.reset_row.itemAt(0, QFormLayout.ItemRole.LabelRole).widget().setText(label)
        name_control(self.temporary, label)
        current = self.role.currentData()
        self.role.clear()
        for role in (Role.STAFF, Role.DERMATOLOGIST, Role.ADMIN):
            self.role.addItem(tr(f"ui.role.{role.value}"), role.value)
        self.role.setCurrentIndex(max(0, self.role.findData(current)) if current else 0)
        set_button_text(self.create, tr("ui.operators.create"))
        set_button_text(self.unlock_button, tr("ui.operators.unlock"))
        set_button_text(self.reset_button, tr("ui.operators.reset"))
        self._fill()

    def _fill(self) -> None:
        tr = self.ctx.tr
        chosen = self.selected()
        self.accounts.blockSignals(True)
        self.accounts.clear()
        for account in self.rows:
            states = [tr(f"ui.operators.{key}") for key, on in (
                ("disabled", account.disabled), ("locked", account.locked),
                ("must_change", account.must_change_password)) if on]
            self.accounts.addItem(" ".join([f"{account.display_name} ({account.username}) — "
                                            f"{tr(f'ui.role.{account.role.value}')}", *states]))
        names = [account.username for account in self.rows]
        if chosen is not None and chosen.username in names:
            self.accounts.setCurrentRow(names.index(chosen.username))
        self.accounts.blockSignals(False)
        self._update_actions()

    def selected(self) -> OperatorAccount | None:
        """The account chosen in the list (None if none is)."""
        row = self.accounts.currentRow()
        return self.rows[row] if 0 <= row < len(self.rows) else None

    def _update_actions(self) -> None:
        account, session = self.selected(), self.ctx.session
        own = account is not None and session is not None and account.id == session.operator_id
        disabled = account is not None and account.disabled
        set_button_text(self.toggle_button, self.ctx.tr(
            "ui.operators.enable" if disabled else "ui.operators.disable"))
        self.toggle_button.setEnabled(account is not None and not own)
        self.unlock_button.setEnabled(account is not None and account.locked)
        self.reset_button.setEnabled(account is not None and not own)
        self.temporary.setEnabled(account is not None and not own)

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

    # -- creating -------------------------------------------------------------------------

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

    # -- managing the chosen account ------------------------------------------------------

    def toggle_disabled(self) -> None:
        """Disable the chosen account, or enable it again if it is disabled."""
        account = self._chosen()
        if account is None:
            return
        service, session = self.ctx.require_service(), self.ctx.require_session()
        if account.disabled:
            self._act(lambda: service.enable_operator(session, account.username),
                      "ui.operators.enabled_done", account.username)
        else:
            self._act(lambda: service.disable_operator(session, account.username),
                      "ui.operators.disabled_done", account.username)

    def unlock_operator(self) -> None:
        """Lift the chosen account's lockout now."""
        account = self._chosen()
        if account is None:
            return
        service, session = self.ctx.require_service(), self.ctx.require_session()
        self._act(lambda: service.unlock_operator(session, account.username),
                  "ui.operators.unlocked_done", account.username)

    def reset_password(self) -> None:
        """Give the chosen account the typed temporary password (to be changed at login)."""
        account = self._chosen()
        if account is None:
            return
        temporary = self.temporary.text()
        if not temporary:
            self.message.error(self.ctx.tr("ui.operators.temp_missing"))
            return
        service, session = self.ctx.require_service(), self.ctx.require_session()
        self.temporary.clear()
        self._act(lambda: service.reset_password(session, account.username, temporary),
                  "ui.operators.reset_done", account.username)

    def _chosen(self) -> OperatorAccount | None:
        account = self.selected()
        if account is None:
            self.message.error(self.ctx.tr("ui.operators.select"))
        return account

    def _act(self, job: Callable[[], object], done_key: str, username: str) -> None:
        self.message.clear_message()
        for button in (self.toggle_button, self.unlock_button, self.reset_button):
            button.setEnabled(False)

        def done(result: object) -> None:
            if isinstance(result, AuthError):
                self.message.error(auth_message(result, self.ctx.tr))
                self._update_actions()
                return
            self.message.show_message(self.ctx.tr(done_key, name=username), "success")
            self.refresh()

        def failed(message: str) -> None:
            self.message.error(message)
            self._update_actions()

        self.ctx.run_data(returning_refusal(job), done, failed)
