"""Fixtures of the UI tests: a real window on a tmp SQLite station, the tiny model, the
simulated dermatoscope replaying real HAM10000 images."""

from __future__ import annotations

import dataclasses
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

import skinstation.ui  # noqa: F401 - installs the PySide6 6.12.0 guard before any Qt call
from skinstation.auth import Role
from skinstation.services.models import ModelManager
from skinstation.services.station import StationService
from skinstation.settings import Settings

PASSWORD = "correct horse battery"


@pytest.fixture(scope="session")
def shared_models(tmp_path_factory: pytest.TempPathFactory, tiny_model: Path) -> ModelManager:
    """One loaded tiny model for every UI test (loading it takes seconds)."""
    home = tmp_path_factory.mktemp("ui-models")
    manager = ModelManager(Settings.load(env={}, home=home, model_path=tiny_model))
    manager.classifier()
    return manager


@pytest.fixture()
def ui_settings(settings: Settings, tiny_model: Path, ham_dir: Path) -> Settings:
    """Station settings for the UI: tiny model, simulator on HAM10000, no settle waits."""
    camera = dataclasses.replace(settings.camera, source="simulator",
                                 simulator_folder=str(ham_dir / "images"),
                                 band_settle_seconds=0.0, illuminator_port="simulator")
    return settings.replace(model_path=tiny_model, camera=camera)


def add_accounts(settings: Settings, models: ModelManager) -> None:
    """Create admin, a staff member and a dermatologist directly through the service."""
    service = StationService(settings, models=models)
    service.create_first_admin("admin", "Admin", PASSWORD)
    admin = service.login("admin", PASSWORD)
    service.create_operator(admin, "nurse", "Nurse Kim", Role.STAFF, PASSWORD)
    service.create_operator(admin, "derm", "Dr Lee", Role.DERMATOLOGIST, PASSWORD)
    service.logout(admin)
    service.database.dispose()


@pytest.fixture(scope="session")
def accounts_template(tmp_path_factory: pytest.TempPathFactory,
                      shared_models: ModelManager) -> Path:
    """A station database with admin, nurse and derm, made once (password hashing is slow)."""
    home = tmp_path_factory.mktemp("ui-accounts")
    add_accounts(Settings.load(env={}, home=home), shared_models)
    return home / "station.db"


@pytest.fixture()
def station(ui_settings: Settings, accounts_template: Path) -> Settings:
    """UI settings whose database already has admin, nurse and derm (passwords: PASSWORD)."""
    ui_settings.home.mkdir(parents=True, exist_ok=True)
    for suffix in ("", "-wal", "-shm"):
        source = accounts_template.with_name(accounts_template.name + suffix)
        if source.is_file():
            shutil.copyfile(source, ui_settings.home / source.name)
    return ui_settings


@pytest.fixture()
def make_window(qtbot, shared_models: ModelManager) -> Iterator[Callable[..., object]]:
    """Build, show and start a station window; closed (threads stopped) after the test."""
    from PySide6.QtWidgets import QApplication

    from skinstation.ui.app import load_stylesheet
    from skinstation.ui.main_window import MainWindow

    load_stylesheet(QApplication.instance())
    windows: list[MainWindow] = []

    def make(settings: Settings, models: ModelManager | None = None, **kwargs: object
             ) -> MainWindow:
        manager = models or shared_models
        window = MainWindow(settings, service_factory=lambda s: StationService(
            s, models=manager), **kwargs)
        qtbot.addWidget(window)
        window.show()
        window.start()
        qtbot.waitUntil(lambda: window.login.ready or window.login.message.kind == "error",
                        timeout=20000)
        windows.append(window)
        return window

    yield make
    for window in windows:
        window.shutdown()
