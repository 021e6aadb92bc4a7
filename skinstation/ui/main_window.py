"""The station window: header, role-filtered navigation, the screens, and the idle lock."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from PySide6.QtCore import Qt, QTimer
from PySide6.QtGui import QCloseEvent, QKeyEvent, QKeySequence, QShortcut
from PySide6.QtWidgets import (
    QButtonGroup,
    QFrame,
    QHBoxLayout,
    QLabel,
    QMainWindow,
    QPushButton,
    QSizePolicy,
    QStackedWidget,
    QVBoxLayout,
    QWidget,
)

from skinstation.auth import (
    Permission,
    Session,
    can_capture,
    can_change_station_settings,
    can_review,
    can_view_history,
    can_view_sync_status,
)
from skinstation.services.models import ModelInfo
from skinstation.services.station import StationService
from skinstation.settings import Settings
from skinstation.ui.camera_worker import SourceFactory
from skinstation.ui.context import StationContext
from skinstation.ui.idle import IdleLock
from skinstation.ui.screens.base import Screen
from skinstation.ui.screens.capture import CaptureScreen, CaptureTaken
from skinstation.ui.screens.history import HistoryScreen
from skinstation.ui.screens.lesion_timeline import LesionTimelineScreen
from skinstation.ui.screens.login import LoginScreen
from skinstation.ui.screens.password_dialog import open_change_password
from skinstation.ui.screens.patient import PatientScreen
from skinstation.ui.screens.patients_list import PatientsListScreen
from skinstation.ui.screens.result import ResultScreen
from skinstation.ui.screens.review import ReviewScreen
from skinstation.ui.screens.settings_screen import SettingsScreen
from skinstation.ui.screens.sync_panel import SyncPanel
from skinstation.ui.sync_status import SyncStatusSource
from skinstation.ui.widgets.common import make_button, set_button_text

ServiceFactory = Callable[[Settings], StationService]

SCREENS: tuple[tuple[type[Screen], Permission], ...] = (
    (PatientScreen, can_capture),
    (CaptureScreen, can_capture),
    (ResultScreen, can_capture),
    (HistoryScreen, can_view_history),
    (ReviewScreen, can_review),
    (SettingsScreen, can_change_station_settings),
    (SyncPanel, can_view_sync_status),
    (PatientsListScreen, can_view_history),
    (LesionTimelineScreen, can_view_history),
)
"""Every screen after login, and the permission that makes it visible."""



class MainWindow(QMainWindow):
    """The exam station.

    Args:
        settings: Station settings.
        sync: Optional sync status source for the sync panel.
        service_factory: Builds the station service (default ``StationService(settings)``);
            called in the data thread, so opening the database never blocks the window.
        config_file: TOML file settings changes are written to.
        source_factory: Opens the frame source (default: chosen from the camera settings;
            tests inject a simulator behind a :class:`~skinstation.camera.SimulatedCable`).
    """

    def __init__(self, settings: Settings, sync: SyncStatusSource | None = None,
                 service_factory: ServiceFactory | None = None,
                 config_file: Path | None = None,
                 source_factory: SourceFactory | None = None) -> None:
        super().__init__()
        self.setObjectName("mainWindow")
        self.ctx = StationContext(settings, sync, self, source_factory)
        self.ctx.config_file = config_file
        self.service_factory = service_factory or StationService
        self.locked_username = ""
        self.lock_count = 0
        self._model_version = ""
        self._resume_screen = ""
        self._shut_down = False

        self.title = QLabel(self)
        self.title.setObjectName("appTitle")
        self.context_label = QLabel(self)
        self.context_label.setObjectName("contextLabel")
        self.operator_label = QLabel(self)
        self.operator_label.setObjectName("operatorLabel")
        self.password_button = make_button("passwordButton", "", self)
        self.password_button.clicked.connect(lambda: open_change_password(self.ctx, self))
        self.lock_button = make_button("lockButton", "", self)
        self.lock_button.clicked.connect(lambda: self.lock(self.ctx.tr("ui.lock.manual")))
        self.logout_button = make_button("logoutButton", "", self)
        self.logout_button.clicked.connect(self.logout)
        self.header = QFrame(self)
        self.header.setObjectName("header")
        header = QHBoxLayout(self.header)
        header.setContentsMargins(12, 4, 12, 4)
        # as tall as its buttons need (the stylesheet's min-height alone let it squeeze them)
        self.header.setSizePolicy(QSizePolicy.Policy.Preferred, QSizePolicy.Policy.Fixed)
        header.addWidget(self.title)
        header.addWidget(self.context_label, 1)
        header.addWidget(self.operator_label)
        header.addWidget(self.password_button)
        header.addWidget(self.lock_button)
        header.addWidget(self.logout_button)

        self.stack = QStackedWidget(self)
        self.login = LoginScreen(self.ctx, self)
        self.login.logged_in.connect(self._logged_in)
        self.stack.addWidget(self.login)
        self.screens: dict[str, Screen] = {}
        self.permissions: dict[str, Permission] = {}
        self.nav = QFrame(self)
        self.nav.setObjectName("nav")
        nav_layout = QVBoxLayout(self.nav)
        self.nav_group = QButtonGroup(self)
        self.nav_group.setExclusive(True)
        self.nav_buttons: dict[str, QPushButton] = {}
        self.nav_shortcuts: dict[str, QShortcut] = {}
        for number, (kind, permission) in enumerate(SCREENS, start=1):
            screen = kind(self.ctx, self)
            screen.navigate.connect(self.show_screen)
            self.screens[screen.screen_id] = screen
            self.permissions[screen.screen_id] = permission
            self.stack.addWidget(screen)
            button = make_button(f"nav_{screen.screen_id}", "nav", self.nav)
            button.setCheckable(True)
            button.clicked.connect(lambda _c=False, s=screen.screen_id: self.show_screen(s))
            shortcut = QShortcut(QKeySequence(f"Ctrl+{number}"), self)
            shortcut.activated.connect(lambda s=screen.screen_id: self.show_screen(s))
            self.nav_shortcuts[screen.screen_id] = shortcut
            self.nav_group.addButton(button)
            self.nav_buttons[screen.screen_id] = button
            nav_layout.addWidget(button)
        nav_layout.addStretch(1)
        self.capture_screen: CaptureScreen = self.screens["capture"]  # type: ignore[assignment]
        self.result_screen: ResultScreen = self.screens["result"]  # type: ignore[assignment]
        self.capture_screen.taken.connect(self._capture_taken)
        self.screens["patients"].open_patient.connect(self._open_patient)  # type: ignore[attr-defined]
        self.capture_screen.has_unsaved = lambda: self.result_screen.has_unsaved

        body = QHBoxLayout()
        body.setContentsMargins(0, 0, 0, 0)
        body.addWidget(self.nav)
        body.addWidget(self.stack, 1)
        central = QWidget(self)
        column = QVBoxLayout(central)
        column.setContentsMargins(0, 0, 0, 0)
        column.setSpacing(0)
        column.addWidget(self.header)
        column.addLayout(body, 1)
        self.setCentralWidget(central)
        self.model_status = QLabel(self)
        self.model_status.setObjectName("modelStatus")
        self.statusBar().addPermanentWidget(self.model_status)
        self.lock_shortcut = QShortcut(QKeySequence("Ctrl+L"), self)
        self.lock_shortcut.activated.connect(lambda: self.lock(self.ctx.tr("ui.lock.manual")))

        self.idle_lock = IdleLock(self.ctx, self)
        self.idle_lock.idle.connect(self._idle)
        self.idle_lock.expired.connect(self.lock)
        self.ctx.language_changed.connect(lambda _language: self.retranslate())
        self.ctx.session_expired.connect(self.lock)
        self.ctx.settings_changed.connect(lambda _s: self.idle_lock.restart())
        self.ctx.visit_changed.connect(lambda _v: self._update_header())
        self.resize(1280, 800)
        self.setMinimumSize(960, 640)
        self._show_logged_out()
        self.retranslate()

    def _open_patient(self, pseudonym: str) -> None:
        """The patient list's "Open": look the patient up on the Patient screen."""
        patient: PatientScreen = self.screens["patient"]  # type: ignore[assignment]
        self.show_screen("patient")
        patient.open_patient(pseudonym)

    # -- start-up -------------------------------------------------------------------------

    def start(self) -> None:
        """Open the database in the data thread, then ask for a login (or the first admin)."""
        factory, settings = self.service_factory, self.ctx.settings

        def open_station() -> tuple[StationService, bool]:
            service = factory(settings)
            return service, service.needs_first_admin()

        self.ctx.run_data(open_station, self._station_ready, self._station_failed)

    def _station_ready(self, result: tuple[StationService, bool]) -> None:
        self.ctx.service, first_run = result
        self.login.set_ready(first_run)
        self.login.on_shown()

    def _station_failed(self, message: str) -> None:
        self.login.set_unavailable(self.ctx.tr("ui.error.start", detail=message))

    # -- texts ----------------------------------------------------------------------------

    def retranslate(self) -> None:
        """Redraw every text in the current language."""
        tr = self.ctx.tr
        self.setWindowTitle(tr("ui.app.title"))
        self.title.setText(tr("ui.app.name"))
        set_button_text(self.lock_button, tr("ui.lock.button"), tr("ui.lock.help"))
        set_button_text(self.logout_button, tr("ui.logout"))
        set_button_text(self.password_button, tr("ui.password.button"), tr("ui.password.help"))
        for screen_id, button in self.nav_buttons.items():
            keys = self.nav_shortcuts[screen_id].key().toString(
                QKeySequence.SequenceFormat.NativeText)
            set_button_text(button, tr(self.screens[screen_id].title_key), keys)
        self.login.retranslate()
        for screen in self.screens.values():
            screen.retranslate()
        self._update_header()
        self._show_model_status()

    def _update_header(self) -> None:
        tr, session, visit = self.ctx.tr, self.ctx.session, self.ctx.visit
        if session is None:
            self.operator_label.setText("")
        else:
            self.operator_label.setText(tr("ui.header.operator", name=session.display_name,
                                           role=tr(f"ui.role.{session.role.value}")))
        self.context_label.setText(
            tr("ui.header.visit", pseudonym=visit.patient.pseudonym, visit=visit.visit.number)
            if visit is not None else "")

    def _show_model_status(self, info: ModelInfo | None = None) -> None:
        if info is not None:
            self._model_version = info.version
        version = self._model_version
        if self.ctx.model_error:
            self.model_status.setText(f"✖ {self.ctx.model_error}")
        elif version:
            self.model_status.setText(self.ctx.tr("ui.status.model", version=version))
        else:
            self.model_status.setText("")

    # -- navigation -----------------------------------------------------------------------

    @property
    def current_screen(self) -> QWidget:
        """The visible page."""
        return self.stack.currentWidget()

    def visible_screens(self) -> list[str]:
        """Ids of the screens the logged-in role may open."""
        return [sid for sid, permission in self.permissions.items() if self.ctx.allows(permission)]

    def show_screen(self, screen_id: str) -> None:
        """Switch to ``screen_id`` if the operator's role may use it."""
        screen = self.screens.get(screen_id)
        if screen is None or not self.ctx.allows(self.permissions[screen_id]):
            return
        previous = self.stack.currentWidget()
        if previous is screen:
            return
        if isinstance(previous, Screen):
            if not previous.may_leave(screen_id):
                if previous.screen_id in self.nav_buttons:
                    self.nav_buttons[previous.screen_id].setChecked(True)
                return
            previous.on_hidden()
        self.stack.setCurrentWidget(screen)
        self.nav_buttons[screen_id].setChecked(True)
        screen.on_shown()

    def _capture_taken(self, taken: CaptureTaken) -> None:
        self.result_screen.show_capture(taken)
        self.show_screen("result")

    # -- login, lock, logout --------------------------------------------------------------

    def _logged_in(self, session: Session) -> None:
        same_operator = session.username == self.locked_username
        if not same_operator:
            self._reset_screens()
        self.ctx.session = session
        self.locked_username = ""
        visible = self.visible_screens()
        for screen_id, button in self.nav_buttons.items():
            button.setVisible(screen_id in visible)
        self.header.setVisible(True)
        self.nav.setVisible(True)
        self._update_header()
        self.idle_lock.restart()
        if can_capture(session.role):
            self._warm_up_model()
        target = self._resume_screen if same_operator and self._resume_screen in visible \
            else (visible[0] if visible else "")
        self.stack.setCurrentWidget(self.login)
        if target:
            self.show_screen(target)

    def _warm_up_model(self) -> None:
        service = self.ctx.require_service()

        def loaded(info: ModelInfo) -> None:
            self.ctx.model_error = ""
            self._show_model_status(info)

        def failed(message: str) -> None:
            self.ctx.model_error = message
            self._show_model_status()

        self.ctx.run_model(service.model_info, loaded, failed)

    def _leave_screens(self) -> None:
        current = self.stack.currentWidget()
        self._resume_screen = current.screen_id if isinstance(current, Screen) else ""
        if isinstance(current, Screen):
            current.on_hidden()
        self.stack.setCurrentWidget(self.login)

    def _end_session(self) -> None:
        session, self.ctx.session = self.ctx.session, None
        service = self.ctx.service
        if session is not None and service is not None:
            self.ctx.run_data(lambda: service.logout(session))

    def _show_logged_out(self) -> None:
        self._resume_screen = ""
        self.header.setVisible(False)
        self.nav.setVisible(False)
        self.idle_lock.stop()
        self.stack.setCurrentWidget(self.login)

    def lock(self, message: str = "") -> None:
        """Lock the station: end the session, hide every patient screen, ask for a login.

        The same operator logging in again returns to where they were; anyone else starts
        afresh (the previous operator's screens are cleared).
        """
        if self.ctx.session is None:
            return
        self.lock_count += 1
        self.locked_username = self.ctx.session.username
        self._leave_screens()
        self._end_session()
        self.header.setVisible(False)
        self.nav.setVisible(False)
        self.idle_lock.stop()
        self.login.show_locked(message or self.ctx.tr("ui.lock.manual"), self.locked_username)
        self.login.on_shown()

    def logout(self) -> None:
        """End the session and clear every screen."""
        self._leave_screens()
        self._end_session()
        self.locked_username = ""
        self._reset_screens()
        self.login.reset()
        self._show_logged_out()
        self.login.on_shown()

    def _reset_screens(self) -> None:
        self.ctx.set_visit(None)
        for screen in self.screens.values():
            screen.reset()

    # -- idle lock ------------------------------------------------------------------------

    def _idle(self) -> None:
        minutes = self.ctx.settings.idle_lock_minutes
        self.lock(self.ctx.tr("ui.lock.idle", minutes=f"{minutes:g}"))

    # -- shutdown -------------------------------------------------------------------------

    def shutdown(self) -> None:
        """Stop the camera and the worker threads, and end the session (idempotent)."""
        if self._shut_down:
            return
        self._shut_down = True
        self.idle_lock.remove()
        for screen in self.screens.values():
            for timer in screen.findChildren(QTimer):
                timer.stop()
        self._end_session()
        self.ctx.shutdown()

    def closeEvent(self, event: QCloseEvent) -> None:
        """Shut the workers down before the window goes."""
        self.shutdown()
        super().closeEvent(event)

    def keyPressEvent(self, event: QKeyEvent) -> None:
        """Escape returns from a detail page to the list it came from."""
        if event.key() == Qt.Key.Key_Escape and self.stack.currentWidget() is \
                self.screens["history"]:
            self.screens["history"].show_list()  # type: ignore[attr-defined]
            return
        super().keyPressEvent(event)
