"""Issue 19, points 4 and 11: the settings form ignores the wheel unless a control is focused
and asks before unsaved edits are lost; the sync panel never claims a sync it did not run and
enrolls the station with a real engine (HTTPS on 127.0.0.1, token in the keyring only)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import keyring
import pytest
from PySide6.QtCore import QPoint, QPointF, Qt, QTimer
from PySide6.QtGui import QWheelEvent
from PySide6.QtWidgets import QApplication, QMessageBox, QWidget

from skinstation.auth import PermissionDeniedError
from skinstation.sync.credentials import CredentialStore
from skinstation.sync.transport import SyncConfigError
from skinstation.ui.station_sync import StationSync
from tests.test_engine_helpers import (
    ADMIN_PASSWORD,
    EngineUnderTest,
    file_keyring,
    make_tls,
    start_engine,
)
from tests.ui.helpers import PASSWORD, TIMEOUT, log_in

NOT_CONFIGURED_TEXT = ("Sync not configured: this station does not send captures to a central "
                       "engine yet. Set the sync server under Settings.")


@pytest.fixture()
def isolated_keyring(tmp_path: Path) -> Iterator[object]:
    previous = keyring.get_keyring()
    backend = file_keyring(tmp_path / "keyring" / "keyring_pass.cfg")
    keyring.set_keyring(backend)
    yield backend
    keyring.set_keyring(previous)


@pytest.fixture(scope="module")
def engine(tmp_path_factory: pytest.TempPathFactory, data_dir: Path) -> Iterator[EngineUnderTest]:
    folder = tmp_path_factory.mktemp("ui-enroll-engine")
    running = start_engine(folder, data_dir, make_tls(folder / "tls"))
    yield running
    running.server.stop()
    running.db.dispose()


def wheel(widget: QWidget, steps: int) -> None:
    """One real wheel event over the middle of ``widget`` (positive: up, negative: down)."""
    centre = QPointF(widget.rect().center())
    event = QWheelEvent(centre, QPointF(widget.mapToGlobal(widget.rect().center())), QPoint(),
                        QPoint(0, 120 * steps), Qt.MouseButton.NoButton,
                        Qt.KeyboardModifier.NoModifier, Qt.ScrollPhase.NoScrollPhase, False)
    QApplication.sendEvent(widget, event)


def open_settings(qtbot, make_window, station):
    window = make_window(station)
    window.resize(1000, 600)  # the form is taller than the page: the scroll area scrolls
    log_in(qtbot, window, "admin")
    window.show_screen("settings")
    screen = window.screens["settings"]
    bar = screen.scroll_area.verticalScrollBar()
    qtbot.waitUntil(lambda: bar.maximum() > 0, timeout=TIMEOUT)
    return window, screen


# -- point 4: the wheel and unsaved edits ------------------------------------------------------


def test_wheel_over_unfocused_controls_scrolls_the_page(qtbot, make_window, station):
    _window, screen = open_settings(qtbot, make_window, station)
    bar = screen.scroll_area.verticalScrollBar()
    sharpness, role, language = (screen.quality["min_focus"], screen.operators.role,
                                 screen.language)
    assert station.quality.min_focus == 4.0 and sharpness.value() == 4.0
    assert role.currentText() == "Clinic staff" and language.currentData() == "en"
    screen.engine_url.setFocus()
    assert bar.value() == 0

    wheel(sharpness, -1)  # scrolling down over the spin box: the page moves, 4.0 stays
    assert sharpness.value() == 4.0 and not sharpness.hasFocus()
    step = QApplication.wheelScrollLines() * bar.singleStep()
    assert bar.value() == min(step, bar.maximum()) > 0
    wheel(role, 1)  # and back up over the role combo box: "Clinic staff" stays
    wheel(language, -1)
    wheel(language, 1)
    assert role.currentText() == "Clinic staff" and language.currentData() == "en"
    assert bar.value() == 0
    assert screen.changes() == {}

    sharpness.setFocus()  # a focused control still takes the wheel (deliberate change)
    qtbot.waitUntil(sharpness.hasFocus, timeout=TIMEOUT)
    wheel(sharpness, 1)
    assert sharpness.value() == 5.0 and bar.value() == 0
    assert screen.changes() == {"quality": {"min_focus": 5.0}}


def test_leaving_settings_with_unsaved_edits_asks(qtbot, make_window, station):
    window, screen = open_settings(qtbot, make_window, station)
    sharpness = screen.quality["min_focus"]
    sync_button = window.nav_buttons["sync"]

    # the real question box, answered "Stay here" by a timer
    sharpness.setValue(7.0)
    seen: list[str] = []

    def answer() -> None:
        box = QApplication.activeModalWidget()
        if not isinstance(box, QMessageBox):
            QTimer.singleShot(20, answer)
            return
        seen.append(box.text())
        stay = next(b for b in box.buttons() if b.text() == "Stay here")
        stay.click()

    QTimer.singleShot(0, answer)
    qtbot.mouseClick(sync_button, Qt.MouseButton.LeftButton)
    assert seen == ["The settings have unsaved changes. Save them before leaving?"]
    assert window.stack.currentWidget() is screen
    assert window.nav_buttons["settings"].isChecked() and not sync_button.isChecked()
    assert sharpness.value() == 7.0 and window.ctx.settings.quality.min_focus == 4.0

    asked: list[str] = []
    screen.confirm_leave = lambda: asked.append("discard") or "discard"
    qtbot.mouseClick(sync_button, Qt.MouseButton.LeftButton)
    assert asked == ["discard"] and window.stack.currentWidget() is window.screens["sync"]
    assert window.ctx.settings.quality.min_focus == 4.0
    config = station.home / "settings.toml"
    assert not config.exists() or "min_focus" not in config.read_text()
    window.show_screen("settings")
    assert sharpness.value() == 4.0

    window.show_screen("sync")  # nothing edited: no question
    assert asked == ["discard"] and window.stack.currentWidget() is window.screens["sync"]
    window.show_screen("settings")
    sharpness.setValue(6.0)
    screen.confirm_leave = lambda: asked.append("save") or "save"
    qtbot.mouseClick(sync_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: window.stack.currentWidget() is window.screens["sync"],
                    timeout=TIMEOUT)
    assert asked == ["discard", "save"]
    assert window.ctx.settings.quality.min_focus == 6.0
    assert "min_focus = 6.0" in config.read_text()


def test_the_dermatoscope_field_of_view_is_set_and_cleared(qtbot, make_window, station):
    window, screen = open_settings(qtbot, make_window, station)
    fov, config = screen.field_of_view, station.home / "settings.toml"
    assert fov.value() == 0.0 and fov.text() == "not known"
    assert fov.accessibleName() == "Dermatoscope field of view (mm)"
    assert screen.changes() == {}
    fov.setValue(25.0)
    assert screen.changes() == {"camera": {"field_of_view_mm": 25.0}}
    qtbot.mouseClick(screen.save_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: window.ctx.settings.camera.field_of_view_mm == 25.0,
                    timeout=TIMEOUT)
    assert window.ctx.require_service().settings.camera.field_of_view_mm == 25.0
    assert "field_of_view_mm = 25.0" in config.read_text()
    assert screen.changes() == {}
    fov.setValue(0.0)  # back to "not known": the key leaves the file
    assert screen.changes() == {"camera": {"field_of_view_mm": None}}
    qtbot.mouseClick(screen.save_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: window.ctx.settings.camera.field_of_view_mm is None,
                    timeout=TIMEOUT)
    assert "field_of_view_mm" not in config.read_text()


# -- point 11: sync status and enrollment ------------------------------------------------------


def open_sync_panel(qtbot, make_window, station):
    window = make_window(station)
    log_in(qtbot, window, "admin")
    sync = StationSync(lambda: window.ctx.service)
    window.ctx.sync = sync
    window.show_screen("sync")
    panel = window.screens["sync"]
    qtbot.waitUntil(lambda: panel.status is not None, timeout=TIMEOUT)
    return window, panel, sync


def test_not_configured_station_never_shows_finished(qtbot, make_window, station,
                                                     isolated_keyring):
    _window, panel, sync = open_sync_panel(qtbot, make_window, station)
    try:
        assert panel.placeholder.isVisible() and panel.placeholder.text() == NOT_CONFIGURED_TEXT
        assert not panel.sync_now.isVisible()
        panel._sync_now()  # even if asked (keyboard shortcut, stale button): no "finished"
        qtbot.wait(300)
        assert "finished" not in panel.message.text().lower()
        assert panel.message.kind == "error"
        assert panel.message.message == NOT_CONFIGURED_TEXT
        assert panel.status.state == "not_configured"
        assert panel.enroll_box.isVisible()
        with pytest.raises(SyncConfigError, match=r"^Sync not configured: no engine URL"):
            sync.sync_now()
        assert "finished" not in panel.message.text().lower()
    finally:
        panel.on_hidden()
        sync.stop()


def fill_enrollment(panel, code: str, engine: EngineUnderTest) -> None:
    box = panel.enroll_box
    box.code.setText(code)
    box.url.setText(engine.url)
    box.pick_ca_file = lambda: str(engine.tls.ca_cert)
    box.browse.click()
    assert box.ca_file.text() == str(engine.tls.ca_cert)


def test_enrollment_from_the_panel_stores_the_credential(qtbot, make_window, station, engine,
                                                         isolated_keyring):
    window, panel, sync = open_sync_panel(qtbot, make_window, station)
    try:
        code = engine.enrollment_code(engine.login("admin", ADMIN_PASSWORD), "ui-desk-1")
        fill_enrollment(panel, code, engine)
        qtbot.mouseClick(panel.enroll_box.submit, Qt.MouseButton.LeftButton)
        qtbot.waitUntil(lambda: panel.message.kind in ("success", "error"), timeout=TIMEOUT)
        assert panel.message.message == (
            f'Enrolled as "ui-desk-1" at {engine.url}; the credential is in the system keyring.')
        credential = CredentialStore(station.station_id).load()
        assert credential is not None
        assert (credential.engine_url, credential.station_name) == (engine.url, "ui-desk-1")
        assert len(credential.token) >= 20
        config = (station.home / "settings.toml").read_text()
        assert f'engine_url = "{engine.url}"' in config
        assert str(engine.tls.ca_cert) in config
        token = credential.token.encode()
        assert token not in config.encode()  # the token is in the keyring only
        for path in station.home.rglob("*"):
            if path.is_file():
                assert token not in path.read_bytes(), path
        assert window.ctx.settings.sync.engine_url == engine.url

        status = sync.status()
        assert (status.enrolled, status.engine_url) == (True, engine.url)
        qtbot.waitUntil(lambda: panel.status.state not in ("not_configured", "not_enrolled"),
                        timeout=TIMEOUT)
        assert not panel.placeholder.isVisible() and not panel.enroll_box.isVisible()
        assert panel.sync_now.isVisible() and panel.enroll_box.code.text() == ""
        qtbot.mouseClick(panel.sync_now, Qt.MouseButton.LeftButton)
        qtbot.waitUntil(lambda: panel.message.kind in ("success", "error"), timeout=TIMEOUT)
        assert panel.message.message == "Sync finished.", panel.message.message
    finally:
        panel.on_hidden()
        sync.stop()


def test_wrong_enrollment_code_shows_the_engines_message(qtbot, make_window, station, engine,
                                                         isolated_keyring):
    window, panel, sync = open_sync_panel(qtbot, make_window, station)
    try:
        fill_enrollment(panel, "WRONG-CODE-0000-0000", engine)
        qtbot.mouseClick(panel.enroll_box.submit, Qt.MouseButton.LeftButton)
        qtbot.waitUntil(lambda: panel.message.kind == "error", timeout=TIMEOUT)
        assert panel.message.message == (
            "Enrollment failed: engine refused (401): enrollment code is unknown, already used "
            "or expired")
        assert CredentialStore(station.station_id).load() is None
        config = station.home / "settings.toml"
        assert not config.exists() or engine.url not in config.read_text()
        assert panel.enroll_box.isVisible() and panel.enroll_box.submit.isEnabled()
        assert panel.enroll_box.code.text() == "WRONG-CODE-0000-0000"  # kept to correct it

        panel.enroll_box.code.clear()
        qtbot.mouseClick(panel.enroll_box.submit, Qt.MouseButton.LeftButton)
        assert panel.message.message == "Enter the enrollment code and the engine URL."

        nurse = window.ctx.require_service().login("nurse", PASSWORD)  # administrators only
        with pytest.raises(PermissionDeniedError, match="may not change station settings"):
            sync.enroll(nurse, "ANY-CODE", engine.url, str(engine.tls.ca_cert))
        assert CredentialStore(station.station_id).load() is None
    finally:
        panel.on_hidden()
        sync.stop()
