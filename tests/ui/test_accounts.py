"""Accounts room (issue 19 point 8): attempts left and lockout on the login screen, the
administrator's disable / unlock / reset in Settings, and changing one's own password."""

from __future__ import annotations

import re

from PySide6.QtCore import Qt
from sqlalchemy import select

from skinstation.storage import AuditEvent
from skinstation.ui.screens.password_dialog import ChangePasswordDialog
from tests.ui.helpers import PASSWORD, TIMEOUT, log_in, try_log_in

TEMPORARY = "temporary phrase 31"
NEW = "my own new phrase 8"
LOCKED = re.compile(r"Account locked until \d\d:\d\d after too many wrong passwords\. "
                    r"An administrator can unlock it now\.")


def click(qtbot, widget) -> None:
    qtbot.mouseClick(widget, Qt.MouseButton.LeftButton)


def operators_box(qtbot, window, username: str):
    """Settings as the logged-in admin, with ``username`` chosen in the account list."""
    window.show_screen("settings")
    box = window.screens["settings"].operators
    qtbot.waitUntil(lambda: any(a.username == username for a in box.rows), timeout=TIMEOUT)
    box.accounts.setCurrentRow([a.username for a in box.rows].index(username))
    return box


def wait_for_success(qtbot, box) -> str:
    qtbot.waitUntil(lambda: box.message.kind in ("success", "error"), timeout=TIMEOUT)
    assert box.message.kind == "success", box.message.message
    return box.message.message


def row_text(box, username: str) -> str:
    index = [a.username for a in box.rows].index(username)
    return box.accounts.item(index).text()


def audited(window, action: str) -> list[tuple[int | None, str | None, dict]]:
    with window.ctx.service.database.transaction() as db:
        rows = db.scalars(select(AuditEvent).where(AuditEvent.action == action)
                          .order_by(AuditEvent.id))
        return [(r.actor_id, r.entity_id, r.detail) for r in rows]


def test_login_counts_down_then_says_until_when_and_the_admin_unlocks(
        qtbot, make_window, station):
    settings = station.replace(auth={"max_failed_logins": 3, "lockout_minutes": 20.0,
                                     "session_timeout_minutes": 15.0,
                                     "min_password_length": 10})
    window = make_window(settings)
    assert try_log_in(qtbot, window, "nurse", "wrong password!") == (
        "Wrong username or password. 2 attempts left before this account is locked for "
        "20 minutes.")
    assert try_log_in(qtbot, window, "nurse", "wrong password!") == (
        "Wrong username or password. 1 attempt left before this account is locked for "
        "20 minutes.")
    assert LOCKED.fullmatch(try_log_in(qtbot, window, "nurse", "wrong password!"))
    assert LOCKED.fullmatch(try_log_in(qtbot, window, "nurse", PASSWORD))

    log_in(qtbot, window, "admin")
    box = operators_box(qtbot, window, "nurse")
    assert row_text(box, "nurse") == "Nurse Kim (nurse) — Clinic staff (locked)"
    assert box.unlock_button.isEnabled()
    click(qtbot, box.unlock_button)
    assert wait_for_success(qtbot, box) == "Account nurse unlocked; it can log in now."
    qtbot.waitUntil(lambda: "(locked)" not in row_text(box, "nurse"), timeout=TIMEOUT)
    assert not box.unlock_button.isEnabled()
    admin_id = window.ctx.session.operator_id
    [(actor, _entity, detail)] = audited(window, "operator.unlocked")
    assert actor == admin_id and detail["username"] == "nurse" and "password" not in str(detail)

    window.logout()
    log_in(qtbot, window, "nurse")  # at once, not in 20 minutes
    assert window.ctx.session.username == "nurse"


def test_admin_disables_an_account_whose_login_is_then_refused(qtbot, make_window, station):
    window = make_window(station)
    log_in(qtbot, window, "admin")
    box = operators_box(qtbot, window, "admin")
    assert not box.toggle_button.isEnabled() and not box.reset_button.isEnabled()  # never one's own
    box.accounts.setCurrentRow([a.username for a in box.rows].index("nurse"))
    assert box.toggle_button.text() == "Disable account" and box.toggle_button.isEnabled()
    click(qtbot, box.toggle_button)
    assert wait_for_success(qtbot, box) == "Account nurse disabled; it can no longer log in."
    qtbot.waitUntil(lambda: row_text(box, "nurse").endswith("(disabled)"), timeout=TIMEOUT)
    assert box.toggle_button.text() == "Enable account"
    window.logout()
    assert try_log_in(qtbot, window, "nurse", PASSWORD) == (
        "This account is disabled. Ask an administrator to enable it again.")
    log_in(qtbot, window, "admin")
    box = operators_box(qtbot, window, "nurse")
    click(qtbot, box.toggle_button)
    assert wait_for_success(qtbot, box) == "Account nurse enabled again."
    window.logout()
    log_in(qtbot, window, "nurse")


def test_a_reset_password_must_be_changed_at_the_next_login(qtbot, make_window, station):
    window = make_window(station)
    log_in(qtbot, window, "admin")
    box = operators_box(qtbot, window, "nurse")
    click(qtbot, box.reset_button)
    assert box.message.message == "Type the temporary password first."
    qtbot.keyClicks(box.temporary, TEMPORARY)
    click(qtbot, box.reset_button)
    assert wait_for_success(qtbot, box) == (
        "Password of nurse reset. They must choose a new password when they next log in.")
    qtbot.waitUntil(lambda: row_text(box, "nurse").endswith("(must change password)"),
                    timeout=TIMEOUT)
    assert [d for _a, _e, d in audited(window, "password.reset")] == [
        {"username": "nurse", "must_change_password": True}]
    window.logout()

    login = window.login
    login.username.setText("nurse")
    login.password.setText(TEMPORARY)
    click(qtbot, login.submit)
    qtbot.waitUntil(lambda: login.password_dialog is not None, timeout=TIMEOUT)
    dialog = login.password_dialog
    assert dialog.isVisible() and window.ctx.session is None  # not let through yet
    assert dialog.intro.text() == (
        "An administrator reset your password. Choose a new one before you continue.")
    dialog.current.setText(TEMPORARY)
    dialog.new.setText(NEW)
    dialog.confirm.setText(NEW)
    click(qtbot, dialog.submit)
    qtbot.waitUntil(lambda: window.ctx.session is not None, timeout=TIMEOUT)
    assert window.ctx.session.username == "nurse"
    assert window.ctx.session.must_change_password is False
    window.logout()
    assert try_log_in(qtbot, window, "nurse", TEMPORARY).startswith(
        "Wrong username or password.")
    log_in(qtbot, window, "nurse", NEW)


def test_leaving_the_forced_change_logs_out(qtbot, make_window, station):
    window = make_window(station)
    log_in(qtbot, window, "admin")
    window.ctx.service.reset_password(window.ctx.session, "derm", TEMPORARY)
    window.logout()
    login = window.login
    login.username.setText("derm")
    login.password.setText(TEMPORARY)
    click(qtbot, login.submit)
    qtbot.waitUntil(lambda: login.password_dialog is not None, timeout=TIMEOUT)
    click(qtbot, login.password_dialog.cancel)
    assert login.password_dialog is None and window.ctx.session is None
    assert login.message.kind == "warning"
    assert login.message.message == ("You must choose a new password before using the "
                                     "station. Log in again with the temporary password.")


def test_everyone_changes_their_own_password_from_the_header(qtbot, make_window, station):
    window = make_window(station)
    log_in(qtbot, window, "derm")
    assert window.password_button.isVisible()
    assert window.password_button.text() == "Change password"
    click(qtbot, window.password_button)
    dialog = window.findChild(ChangePasswordDialog)
    assert dialog is not None and dialog.isVisible()

    def submit(current: str, new: str, confirm: str) -> str:
        dialog.current.setText(current)
        dialog.new.setText(new)
        dialog.confirm.setText(confirm)
        dialog.message.clear_message()
        click(qtbot, dialog.submit)
        qtbot.waitUntil(lambda: dialog.message.kind != "", timeout=TIMEOUT)
        return dialog.message.message

    assert submit(PASSWORD, NEW, NEW + "x") == "The two new passwords differ."
    assert submit("not my password", NEW, NEW) == "The current password is wrong."
    assert submit(PASSWORD, "tiny", "tiny") == "Password must be at least 10 characters long."
    assert submit(PASSWORD, NEW, NEW) == "Your password was changed."
    assert dialog.message.kind == "success"
    assert [(a, e) for a, e, _d in audited(window, "password.changed")] == [
        (window.ctx.session.operator_id, str(window.ctx.session.operator_id))]
    click(qtbot, dialog.cancel)
    window.logout()
    log_in(qtbot, window, "derm", NEW)
    click(qtbot, window.password_button)
    assert any(d.isVisible() for d in window.findChildren(ChangePasswordDialog))
    window.lock()  # a lock closes the dialog with the session
    qtbot.waitUntil(lambda: not any(d.isVisible()
                                    for d in window.findChildren(ChangePasswordDialog)),
                    timeout=TIMEOUT)


def test_attempts_left_in_korean(qtbot, make_window, station):
    window = make_window(station.replace(language="ko"))
    assert try_log_in(qtbot, window, "nurse", "wrong password!") == (
        "사용자 이름 또는 비밀번호가 틀렸습니다. 4번 더 틀리면 이 계정이 15분 동안 잠깁니다.")
