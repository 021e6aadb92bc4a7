"""Driving the station window like an operator would (clicks, typing, keys)."""

from __future__ import annotations

from PySide6.QtCore import Qt

from skinstation.ui.main_window import MainWindow

PASSWORD = "correct horse battery"
TIMEOUT = 20000


def log_in(qtbot, window: MainWindow, username: str, password: str = PASSWORD) -> None:
    """Type the credentials, press Enter, wait for the session."""
    login = window.login
    qtbot.waitUntil(lambda: login.ready, timeout=TIMEOUT)
    login.username.clear()
    qtbot.keyClicks(login.username, username)
    login.password.clear()
    qtbot.keyClicks(login.password, password)
    qtbot.keyClick(login.password, Qt.Key.Key_Return)
    qtbot.waitUntil(lambda: window.ctx.session is not None, timeout=TIMEOUT)


def try_log_in(qtbot, window: MainWindow, username: str, password: str) -> str:
    """Attempt a login expected to fail; returns the message shown."""
    login = window.login
    login.username.setText(username)
    login.password.setText(password)
    qtbot.mouseClick(login.submit, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: login.message.kind == "error", timeout=TIMEOUT)
    message = login.message.message
    login.message.clear_message()
    return message


def open_visit(qtbot, window: MainWindow, pseudonym: str, site: str = "back") -> None:
    """Patient screen: find (or create, confirmed), start a visit, choose the body site."""
    window.show_screen("patient")
    patient = window.screens["patient"]
    patient.pseudonym.clear()
    qtbot.keyClicks(patient.pseudonym, pseudonym)
    qtbot.mouseClick(patient.find_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: patient.start_button.isEnabled() or patient.create_button.isVisible(),
                    timeout=TIMEOUT)
    if patient.create_button.isVisible():  # not found: confirm creating the new patient
        qtbot.mouseClick(patient.create_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: patient.start_button.isEnabled(), timeout=TIMEOUT)
    qtbot.mouseClick(patient.start_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: window.ctx.visit is not None, timeout=TIMEOUT)
    qtbot.mouseClick(patient.site_buttons[site], Qt.MouseButton.LeftButton)
    assert window.ctx.visit.body_site == site
    assert patient.capture_button.isEnabled()


def wait_for_preview(qtbot, window: MainWindow, frames: int = 3) -> None:
    """Capture screen: wait until the source is open and frames are being shown."""
    capture = window.capture_screen
    qtbot.waitUntil(lambda: capture.source is not None or bool(capture.camera_error),
                    timeout=TIMEOUT)
    start = capture.preview.frames_painted
    qtbot.waitUntil(lambda: capture.preview.frames_painted >= start + frames, timeout=TIMEOUT)


def take_capture(qtbot, window: MainWindow, button=None):
    """Capture screen: wait for the live picture, press ``button`` (default: Capture), wait
    until the result screen shows the new analysis; returns the result screen."""
    capture, result = window.capture_screen, window.result_screen
    button = button or capture.capture_button
    wait_for_preview(qtbot, window)
    qtbot.waitUntil(button.isEnabled, timeout=TIMEOUT)
    previous = result.taken
    qtbot.mouseClick(button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: result.taken is not previous and result.outcome is not None,
                    timeout=TIMEOUT)
    return result


def save_result(qtbot, result) -> list[int]:
    """Result screen: press Save, wait, check it said so; returns the saved capture ids."""
    qtbot.mouseClick(result.save_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: bool(result.saved_ids) or result.message.kind == "error",
                    timeout=TIMEOUT)
    assert result.message.kind == "success", result.message.message
    return list(result.saved_ids)


def create_first_admin(qtbot, window: MainWindow, username: str = "admin") -> None:
    """First run: the login screen creates the administrator, who is then logged in."""
    login = window.login
    assert login.first_run and login.confirm.isVisible()
    login.username.setText(username)
    login.display_name.setText("Station admin")
    login.password.setText(PASSWORD)
    login.confirm.setText(PASSWORD)
    qtbot.mouseClick(login.submit, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: window.ctx.session is not None, timeout=TIMEOUT)


def create_account(qtbot, window: MainWindow, username: str, name: str, role) -> None:
    """Settings → accounts: the administrator creates an account (password: PASSWORD)."""
    box = window.screens["settings"].operators
    box.username.setText(username)
    box.display_name.setText(name)
    box.role.setCurrentIndex(box.role.findData(role.value))
    box.password.setText(PASSWORD)
    qtbot.mouseClick(box.create, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: box.message.kind in ("success", "error"), timeout=TIMEOUT)
    assert box.message.kind == "success", box.message.message
    box.message.clear_message()
