"""Changing one's own password (a dialog), and the translated texts of login refusals.

The dialog serves both the header's "Change password" button and the change an operator must
make after an administrator reset their password (``forced``: the login screen opens it and
only lets the session through once the new password is set).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtWidgets import (
    QDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QVBoxLayout,
    QWidget,
)

from skinstation.auth import (
    AccountDisabledError,
    AccountLockedError,
    AuthError,
    InvalidCredentialsError,
    LastAdminError,
    LoginThrottledError,
    OwnAccountError,
    PasswordChangeRequiredError,
    Session,
    SessionExpiredError,
    WrongCurrentPasswordError,
)
from skinstation.ui.context import StationContext
from skinstation.ui.widgets.common import MessageBar, make_button, name_control, set_button_text

Translate = Callable[..., str]


def auth_message(error: AuthError, tr: Translate) -> str:
    """The operator-facing sentence for an authentication refusal, in the current language.

    Numbers (attempts left, lockout minutes, locked-until time, wait) come from the error,
    i.e. from the station's ``auth`` settings. Errors without a translation keep their text.
    """
    if isinstance(error, WrongCurrentPasswordError):
        return tr("ui.password.wrong_current")
    if isinstance(error, InvalidCredentialsError):
        text = tr("ui.login.wrong")
        left, minutes = error.attempts_left, error.lockout_minutes
        if left is not None and minutes is not None:
            key = "ui.login.attempts_left_one" if left == 1 else "ui.login.attempts_left"
            text = f"{text} {tr(key, count=left, minutes=f'{minutes:g}')}"
        return text
    if isinstance(error, AccountLockedError):
        return tr("ui.login.locked_out", time=error.shown_until)
    if isinstance(error, AccountDisabledError):
        return tr("ui.login.disabled")
    if isinstance(error, LoginThrottledError):
        seconds = error.wait_seconds
        if seconds < 120:
            return tr("ui.login.throttled_seconds", seconds=seconds)
        return tr("ui.login.throttled_minutes", minutes=-(-seconds // 60))
    if isinstance(error, PasswordChangeRequiredError):
        return tr("ui.password.required")
    if isinstance(error, OwnAccountError):
        return tr("ui.operators.own_disable" if error.action == "disable"
                  else "ui.operators.own_reset")
    if isinstance(error, LastAdminError):
        return tr("ui.operators.last_admin")
    return str(error)


def returning_refusal(job: Callable[[], Any]) -> Callable[[], Any]:
    """Wrap worker-thread ``job`` so an :class:`AuthError` is returned, not raised.

    The screen then words the refusal itself (:func:`auth_message`); an expired session
    still raises, so the window's usual lock-screen handling applies.
    """
    def run() -> Any:
        try:
            return job()
        except SessionExpiredError:
            raise
        except AuthError as error:
            return error

    return run


class ChangePasswordDialog(QDialog):
    """Current password, the new one twice; ``StationService.change_password`` checks them.

    Args:
        ctx: The station context (service, translator, worker threads).
        session: Whose password changes (not necessarily ``ctx.session`` yet: see forced).
        forced: The password was reset by an administrator; the dialog says so.
        parent: The parent widget.

    Signals:
        changed: The new password was stored (the dialog then closes).
    """

    changed = Signal()

    def __init__(self, ctx: StationContext, session: Session, *, forced: bool = False,
                 parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.ctx, self.session, self.forced = ctx, session, forced
        self.setObjectName("changePasswordDialog")
        self.setModal(True)
        tr = ctx.tr
        self.setWindowTitle(tr("ui.password.title"))
        self.intro = QLabel(tr("ui.password.intro_forced" if forced else "ui.password.intro"),
                            self)
        self.intro.setObjectName("passwordIntro")
        self.intro.setWordWrap(True)
        self.current = self._field("currentPassword")
        self.new = self._field("newOwnPassword")
        self.confirm = self._field("confirmNewPassword")
        form = QFormLayout()
        for key, field in (("current_forced" if forced else "current", self.current),
                           ("new", self.new), ("confirm", self.confirm)):
            label = QLabel(tr(f"ui.password.{key}"), self)
            label.setBuddy(field)
            name_control(field, label.text())
            form.addRow(label, field)
        self.submit = make_button("changePasswordSubmit", "primary", self)
        set_button_text(self.submit, tr("ui.password.submit"))
        self.submit.setDefault(True)
        self.submit.clicked.connect(self._submit)
        self.cancel = make_button("changePasswordCancel", "", self)
        set_button_text(self.cancel, tr("ui.password.cancel"))
        self.cancel.clicked.connect(self.reject)
        self.message = MessageBar("passwordMessage", self)
        buttons = QHBoxLayout()
        buttons.addWidget(self.cancel)
        buttons.addWidget(self.submit)
        layout = QVBoxLayout(self)
        layout.addWidget(self.intro)
        layout.addLayout(form)
        layout.addLayout(buttons)
        layout.addWidget(self.message)
        self.setMinimumWidth(480)
        if not forced:  # the station locked or logged out meanwhile: close with it
            self._watch = QTimer(self)
            self._watch.timeout.connect(self._check_session)
            self._watch.start(500)
            ctx.session_expired.connect(self.reject)

    def _check_session(self) -> None:
        if self.ctx.session is not self.session:
            self.reject()

    def _field(self, name: str) -> QLineEdit:
        field = QLineEdit(self)
        field.setObjectName(name)
        field.setEchoMode(QLineEdit.EchoMode.Password)
        field.setMinimumHeight(44)
        field.returnPressed.connect(self._submit)
        return field

    def _submit(self) -> None:
        if not self.submit.isEnabled():
            return
        tr = self.ctx.tr
        old, new = self.current.text(), self.new.text()
        if not old or not new or not self.confirm.text():
            self.message.error(tr("ui.password.missing"))
            return
        if new != self.confirm.text():
            self.message.error(tr("ui.password.mismatch"))
            return
        service, session = self.ctx.require_service(), self.session
        self.submit.setEnabled(False)
        self.ctx.run_data(returning_refusal(lambda: service.change_password(session, old, new)),
                          self._done, self._failed)

    def _done(self, result: object) -> None:
        if isinstance(result, AuthError):
            self._failed(auth_message(result, self.ctx.tr))
            return
        for field in (self.current, self.new, self.confirm):
            field.clear()
            field.setEnabled(False)
        self.changed.emit()
        if self.forced:
            self.accept()
            return
        self.submit.setVisible(False)
        set_button_text(self.cancel, self.ctx.tr("ui.password.close"))
        self.cancel.setFocus()
        self.message.show_message(self.ctx.tr("ui.password.changed"), "success")

    def _failed(self, message: str) -> None:
        self.submit.setEnabled(True)
        self.new.clear()
        self.confirm.clear()
        self.message.error(message)


def open_change_password(ctx: StationContext, parent: QWidget) -> ChangePasswordDialog | None:
    """Open the dialog for the logged-in operator (the header's button); None if nobody is."""
    if ctx.session is None:
        return None
    dialog = ChangePasswordDialog(ctx, ctx.session, parent=parent)
    dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
    dialog.open()
    return dialog
