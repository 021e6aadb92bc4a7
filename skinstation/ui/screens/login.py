"""Login, first-run administrator creation, and the lock screen."""

from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import QFormLayout, QLabel, QLineEdit, QVBoxLayout, QWidget

from skinstation.auth import AuthError, Session
from skinstation.ui.context import StationContext
from skinstation.ui.screens.base import Screen
from skinstation.ui.screens.password_dialog import (
    ChangePasswordDialog,
    auth_message,
    returning_refusal,
)
from skinstation.ui.widgets.common import (
    MessageBar,
    heading,
    make_button,
    name_control,
    set_button_text,
)


class LoginScreen(Screen):
    """Operator and password; on a fresh station, the first administrator's account instead.

    A refused login says why in the current language: a wrong password how many more lock the
    account, a locked one until when (and that an administrator can unlock it). After an
    administrator's reset the operator must choose a new password (:attr:`password_dialog`)
    before the session is let through.

    Signals:
        logged_in: A session was opened (the window then shows the operator's screens).
    """

    screen_id = "login"
    title_key = "ui.login.title"
    logged_in = Signal(object)

    def __init__(self, ctx: StationContext, parent: QWidget | None = None) -> None:
        super().__init__(ctx, parent)
        self.first_run = False
        self.ready = False
        self.locked_message = ""
        self.password_dialog: ChangePasswordDialog | None = None
        self.title = heading("loginTitle", self)
        self.intro = QLabel(self)
        self.intro.setObjectName("loginIntro")
        self.intro.setWordWrap(True)
        self.username = QLineEdit(self)
        self.username.setObjectName("username")
        self.display_name = QLineEdit(self)
        self.display_name.setObjectName("displayName")
        self.password = QLineEdit(self)
        self.password.setObjectName("password")
        self.password.setEchoMode(QLineEdit.EchoMode.Password)
        self.confirm = QLineEdit(self)
        self.confirm.setObjectName("confirmPassword")
        self.confirm.setEchoMode(QLineEdit.EchoMode.Password)
        self.submit = make_button("loginButton", "primary", self)
        self.submit.setDefault(True)
        self.submit.clicked.connect(self._submit)
        for field in (self.username, self.display_name, self.password, self.confirm):
            field.setMinimumHeight(44)
            field.returnPressed.connect(self._submit)
        self.message = MessageBar("loginMessage", self)

        self.form = QFormLayout()
        self.form.setRowWrapPolicy(QFormLayout.RowWrapPolicy.DontWrapRows)
        self.form.setVerticalSpacing(12)
        self.labels = {name: QLabel(self) for name in
                       ("username", "display_name", "password", "confirm")}
        self.form.addRow(self.labels["username"], self.username)
        self.form.addRow(self.labels["display_name"], self.display_name)
        self.form.addRow(self.labels["password"], self.password)
        self.form.addRow(self.labels["confirm"], self.confirm)
        for label, field in zip(self.labels.values(), (self.username, self.display_name,
                                                        self.password, self.confirm), strict=True):
            label.setBuddy(field)

        card = QWidget(self)
        card.setObjectName("loginCard")
        card.setFixedWidth(560)
        inner = QVBoxLayout(card)
        inner.setContentsMargins(28, 24, 28, 24)
        inner.setSpacing(14)
        inner.addWidget(self.title)
        inner.addWidget(self.intro)
        inner.addLayout(self.form)
        inner.addWidget(self.submit)
        inner.addWidget(self.message)
        outer = QVBoxLayout(self)
        outer.addStretch(1)
        outer.addWidget(card, 0, Qt.AlignmentFlag.AlignHCenter)
        outer.addStretch(2)
        self.setTabOrder(self.username, self.display_name)
        self.setTabOrder(self.display_name, self.password)
        self.setTabOrder(self.password, self.confirm)
        self.setTabOrder(self.confirm, self.submit)
        self._apply_mode()

    # -- state ----------------------------------------------------------------------------

    def set_ready(self, first_run: bool) -> None:
        """The database is open; ``first_run`` asks for the first administrator."""
        self.ready, self.first_run = True, first_run
        self.submit.setEnabled(True)
        self._apply_mode()

    def set_unavailable(self, message: str) -> None:
        """The station cannot start (e.g. the database is locked): say why."""
        self.ready = False
        self.submit.setEnabled(False)
        self.message.error(message)

    def show_locked(self, message: str, username: str = "") -> None:
        """Show the lock screen: ``message`` says why (idle time, session ended)."""
        self.locked_message = message
        if username:
            self.username.setText(username)
        self.password.clear()
        self.retranslate()
        self.message.show_message(message, "warning")

    def _apply_mode(self) -> None:
        for field in ("display_name", "confirm"):
            self.labels[field].setVisible(self.first_run)
        self.display_name.setVisible(self.first_run)
        self.confirm.setVisible(self.first_run)
        self.submit.setEnabled(self.ready)
        self.retranslate()

    def retranslate(self) -> None:
        """See :meth:`Screen.retranslate`."""
        tr = self.ctx.tr
        key = "first_run" if self.first_run else "login"
        self.title.setText(tr(f"ui.{key}.title"))
        intro = tr(f"ui.{key}.intro") if self.ready else tr("ui.login.opening")
        self.intro.setText(intro)
        for name, field in (("username", self.username), ("display_name", self.display_name),
                            ("password", self.password), ("confirm", self.confirm)):
            label = tr(f"ui.login.{name}")
            self.labels[name].setText(label)
            name_control(field, label)
        set_button_text(self.submit, tr(f"ui.{key}.submit"))

    def on_shown(self) -> None:
        """Focus the first empty field."""
        (self.password if self.username.text() else self.username).setFocus()

    def reset(self) -> None:
        """Clear every field."""
        for field in (self.username, self.display_name, self.password, self.confirm):
            field.clear()
        self.locked_message = ""
        self.message.clear_message()

    # -- actions --------------------------------------------------------------------------

    def _submit(self) -> None:
        if not self.ready or not self.submit.isEnabled():
            return
        username, password = self.username.text().strip(), self.password.text()
        tr = self.ctx.tr
        if not username or not password:
            self.message.error(tr("ui.login.missing"))
            return
        service = self.ctx.require_service()
        if self.first_run:
            display = self.display_name.text().strip() or username
            if password != self.confirm.text():
                self.message.error(tr("ui.first_run.mismatch"))
                return

            def create() -> Session:
                service.create_first_admin(username, display, password)
                return service.login(username, password)

            job = create
        else:
            def login() -> Session:
                return service.login(username, password)

            job = login
        self.submit.setEnabled(False)
        self.message.show_message(tr("ui.login.checking"), "info")
        self.ctx.run_data(returning_refusal(job), self._done, self._failed)

    def _done(self, result: Session | AuthError) -> None:
        if isinstance(result, AuthError):
            self._failed(auth_message(result, self.ctx.tr))
            return
        self.password.clear()
        self.confirm.clear()
        self.message.clear_message()
        self.first_run = False
        self._apply_mode()
        if result.must_change_password:
            self._require_new_password(result)
            return
        self.logged_in.emit(result)

    def _require_new_password(self, session: Session) -> None:
        """The password was reset: the session goes through only once a new one is set."""
        dialog = ChangePasswordDialog(self.ctx, session, forced=True, parent=self)
        dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        dialog.changed.connect(lambda: self._new_password_set(session))
        dialog.rejected.connect(lambda: self._new_password_refused(session))
        self.password_dialog = dialog
        self.submit.setEnabled(False)
        dialog.open()

    def _new_password_set(self, session: Session) -> None:
        self.password_dialog = None
        self.submit.setEnabled(self.ready)
        self.logged_in.emit(session)

    def _new_password_refused(self, session: Session) -> None:
        self.password_dialog = None
        self.submit.setEnabled(self.ready)
        service = self.ctx.require_service()
        self.ctx.run_data(lambda: service.logout(session))
        self.message.show_message(self.ctx.tr("ui.password.cancelled"), "warning")
        self.password.setFocus()

    def _failed(self, message: str) -> None:
        self.password.clear()
        self.confirm.clear()
        self.submit.setEnabled(True)
        self.message.error(message)
        self.password.setFocus()
