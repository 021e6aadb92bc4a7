"""What every screen shares: settings, the station service, the session, workers, texts."""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PySide6.QtCore import QObject, Signal

from skinstation.auth import Permission, Session, SessionExpiredError
from skinstation.core.i18n import text
from skinstation.services.station import StationService
from skinstation.settings import CameraSettings, Settings
from skinstation.storage import Patient, Visit
from skinstation.ui.camera_worker import CameraController, SourceFactory
from skinstation.ui.errors import describe_error
from skinstation.ui.sync_status import SyncStatusSource
from skinstation.ui.workers import TaskRunner


@dataclass
class VisitState:
    """The open visit the operator is capturing in.

    Attributes:
        patient: The patient.
        visit: The visit row.
        body_site: Body site code of the lesion being captured ("" until chosen).
        access_time: When the operator opened the patient's record (stored with captures).
        lesion_id: The lesion being captured ("which lesion?"), or None for none chosen.
    """

    patient: Patient
    visit: Visit
    body_site: str
    access_time: dt.datetime
    lesion_id: int | None = None


def effective_camera_settings(settings: Settings) -> CameraSettings:
    """The camera settings with the simulator folder defaulted to the data's HAM10000 images.

    When ``camera.simulator_folder`` is unset and ``data_dir`` is set, the simulated
    dermatoscope plays ``<data_dir>/ham10000/images`` (if that folder exists).
    """
    camera = settings.camera
    if not camera.simulator_folder and settings.data_dir is not None:
        folder = Path(settings.data_dir) / "ham10000" / "images"
        if folder.is_dir():
            camera = dataclasses.replace(camera, simulator_folder=str(folder))
    return camera


class StationContext(QObject):
    """Shared state and services of one station window.

    Args:
        settings: Station settings.
        sync: Optional sync status source (see :mod:`skinstation.ui.sync_status`).
        parent: Owning QObject.
        source_factory: Opens the frame source (default: chosen from the camera settings).

    Attributes:
        data: Worker thread for database work (and saving).
        model: Worker thread for classification and heatmaps.
        camera: The camera thread's controller.
        service: The station service (None until the database is open).
        session: The logged-in operator's session (None while locked or logged out).
        visit: The open visit, if any.
    """

    language_changed = Signal(str)
    session_expired = Signal(str)
    visit_changed = Signal(object)
    settings_changed = Signal(object)

    def __init__(self, settings: Settings, sync: SyncStatusSource | None = None,
                 parent: QObject | None = None,
                 source_factory: SourceFactory | None = None) -> None:
        super().__init__(parent)
        self.settings = settings
        self.language = settings.language if settings.language in ("en", "ko") else "en"
        self.sync = sync
        self.data = TaskRunner("station-data", self)
        self.model = TaskRunner("station-model", self)
        self.background = TaskRunner("station-background", self)
        self.camera = CameraController(self, source_factory)
        self.service: StationService | None = None
        self.session: Session | None = None
        self.visit: VisitState | None = None
        self.model_error = ""
        """Why the model cannot be used (empty while it can, or before it was loaded)."""
        self.config_file: Path | None = None
        """The TOML file settings changes are written to (None: ``<home>/settings.toml``)."""

    # -- texts ----------------------------------------------------------------------------

    def tr(self, key: str, **values: Any) -> str:
        """The text for ``key`` in the current language, formatted with ``values``."""
        value = text(key, self.language)
        return value.format(**values) if values else value

    def set_language(self, language: str) -> None:
        """Switch every screen to ``language`` (``en`` or ``ko``)."""
        if language != self.language:
            self.language = language
            self.language_changed.emit(language)

    def apply_settings(self, settings: Settings) -> None:
        """Use ``settings`` from now on (language at once, camera at the next preview)."""
        self.settings = settings
        self.settings_changed.emit(settings)
        self.set_language(settings.language)

    def describe(self, error: BaseException) -> str:
        """A translated, operator-facing sentence for ``error``."""
        return describe_error(error, self.tr)

    # -- access ---------------------------------------------------------------------------

    def allows(self, permission: Permission) -> bool:
        """Whether the logged-in operator's role has ``permission``."""
        return self.session is not None and permission(self.session.role)

    def require_service(self) -> StationService:
        """The station service (raises if the database is not open yet)."""
        if self.service is None:
            raise RuntimeError(self.tr("ui.error.not_ready"))
        return self.service

    def require_session(self) -> Session:
        """The current session (raises if nobody is logged in)."""
        if self.session is None:
            raise SessionExpiredError(self.tr("ui.login.locked"))
        return self.session

    def set_visit(self, visit: VisitState | None) -> None:
        """Set (or clear) the open visit; a new visit moves a simulated scope to a new lesion."""
        self.visit = visit
        if visit is not None:
            self.camera.hold_lesion_for(visit.visit.id)
        self.visit_changed.emit(visit)

    # -- running work ---------------------------------------------------------------------

    def _call(self, runner: TaskRunner, function: Callable[[], Any],
              on_done: Callable[[Any], None] | None,
              on_error: Callable[[str], None] | None) -> int:
        def failed(error: BaseException) -> None:
            if isinstance(error, SessionExpiredError):
                self.session_expired.emit(str(error))
                return
            if on_error is not None:
                on_error(self.describe(error))

        return runner.run(function, on_done, failed)

    def run_data(self, function: Callable[[], Any],
                 on_done: Callable[[Any], None] | None = None,
                 on_error: Callable[[str], None] | None = None) -> int:
        """Run database work in the data thread; errors arrive as translated messages."""
        return self._call(self.data, function, on_done, on_error)

    def run_model(self, function: Callable[[], Any],
                  on_done: Callable[[Any], None] | None = None,
                  on_error: Callable[[str], None] | None = None) -> int:
        """Run model work (classification, heatmaps) in the model thread."""
        return self._call(self.model, function, on_done, on_error)

    def run_background(self, function: Callable[[], Any],
                       on_done: Callable[[Any], None] | None = None,
                       on_error: Callable[[str], None] | None = None) -> int:
        """Run slow, non-urgent work (sync status, sync now) in its own thread."""
        return self._call(self.background, function, on_done, on_error)

    def shutdown(self) -> None:
        """Stop every worker thread (camera first; queued database work still runs)."""
        self.camera.shutdown()
        self.background.shutdown()
        self.model.shutdown()
        self.data.shutdown()
