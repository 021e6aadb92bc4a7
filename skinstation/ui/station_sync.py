"""Connects the station window's sync panel to the real sync runner, once the database is open.

The station service (and so the database) is created in a worker thread after the window
opens; :class:`StationSync` builds the :class:`~skinstation.sync.runner.SyncRunner` on the
first status request after that, starts its background thread when an engine URL is set,
and stops it when the application quits. Received models are installed through the station's
model manager, which verifies them and switches atomically. Captures the engine refused are put
back in the queue by :meth:`StationSync.retry_refused`, for administrators only.

An administrator enrolls the station from the sync panel (:meth:`StationSync.enroll`): the
one-time code goes to the engine through :func:`~skinstation.sync.runner.enroll_station`, the
token lands in the OS keyring only, and the engine URL and CA file are written to the settings.
The status says ``not_configured`` / ``not_enrolled`` / ``starting`` while no round can run, and
"Sync now" then refuses instead of pretending to have synced.
"""

from __future__ import annotations

import dataclasses
import threading
from pathlib import Path
from typing import Any

from skinstation.auth import Session, can_change_station_settings
from skinstation.core.i18n import KeyedError, text
from skinstation.services.station import StationService
from skinstation.sync.client import SyncError
from skinstation.sync.credentials import CredentialError, StationCredential
from skinstation.sync.runner import SyncRunner, enroll_station
from skinstation.sync.transport import SyncConfigError
from skinstation.ui.sync_status import NOT_CONFIGURED, NOT_ENROLLED, STARTING, SyncStatus

OPENING = text("error.sync.opening")
NO_URL = text("error.sync.not_configured")
NOT_ENROLLED_TEXT = text("error.sync.enroll_needed")


class EnrollmentError(KeyedError, ValueError):
    """Enrolling failed: the engine refused the code, could not be reached, or bad input.

    Raised with a text key (``error.sync.*``; see :class:`~skinstation.core.i18n.KeyedError`).
    """


class StationSync:
    """A :class:`~skinstation.ui.sync_status.SyncStatusSource` backed by a ``SyncRunner``."""

    def __init__(self, service_provider: Any) -> None:
        """Wrap a callable that returns the StationService, or None while it is not ready."""
        self._service_provider = service_provider
        self._lock = threading.Lock()
        self._runner: SyncRunner | None = None

    def _ensure_runner(self) -> SyncRunner | None:
        with self._lock:
            if self._runner is not None:
                return self._runner
            service: StationService | None = self._service_provider()
            if service is None:
                return None
            models = service.models
            self._runner = SyncRunner(
                service.settings, service.database,
                installer=lambda path, sha256: models.install(path, sha256).version)
            if service.settings.sync.engine_url:
                self._runner.start()
            return self._runner

    def status(self) -> Any:
        """The runner's status, or a "starting" placeholder before the database is open."""
        runner = self._ensure_runner()
        if runner is None:
            return SyncStatus(0, None, OPENING, state=STARTING,
                              last_error_text=("error.sync.opening", {}))
        status = runner.status()
        if not status.engine_url:
            return SyncStatus(status.queue_length, status.last_success, NO_URL,
                              status.refused_captures, state=NOT_CONFIGURED,
                              last_error_text=("error.sync.not_configured", {}))
        if not status.enrolled:
            return SyncStatus(status.queue_length, status.last_success, NOT_ENROLLED_TEXT,
                              status.refused_captures, state=NOT_ENROLLED,
                              last_error_text=("error.sync.enroll_needed", {}))
        return status

    def sync_now(self) -> SyncStatus:
        """Run a sync round now, in the calling (worker) thread; returns the status after it.

        Raises:
            SyncConfigError: No engine URL, not enrolled, or the database is still opening.
        """
        status = SyncStatus.of(self.status())
        runner = self._ensure_runner()
        if runner is None or not status.ready:
            key = status.last_error_text[0] if status.last_error_text else ""
            raise SyncConfigError(key or status.last_error or "error.sync.not_configured")
        return SyncStatus.of(runner.sync_once())

    def enroll(self, session: Session, code: str, engine_url: str, ca_file: str = "",
               config_file: Path | None = None) -> StationCredential:
        """Enroll with the engine at ``engine_url`` using a one-time ``code`` (administrators).

        The credential (with the token) is stored in the OS keyring only; the engine URL and
        the CA file are written to the settings file, and sync starts with them.

        Args:
            session: An administrator's session.
            code: The one-time enrollment code issued by the engine's administrator.
            engine_url: The engine's base URL (``https://…``).
            ca_file: PEM file of the CA that signed the engine's certificate (empty: the
                system's trust store).
            config_file: Settings file to update (default ``<home>/settings.toml``).

        Raises:
            PermissionDeniedError: Unless the session may change the station's configuration.
            EnrollmentError: Empty code or URL, a missing CA file, already enrolled, or the
                engine refused the code (its message) or could not be reached.
        """
        service: StationService | None = self._service_provider()
        if service is None or self._ensure_runner() is None:
            raise SyncConfigError("error.sync.opening")
        service.auth.require(session, can_change_station_settings)
        code, engine_url, ca_file = code.strip(), engine_url.strip().rstrip("/"), ca_file.strip()
        if not code or not engine_url:
            raise EnrollmentError("error.sync.enroll_missing")
        if ca_file and not Path(ca_file).is_file():
            raise EnrollmentError("error.sync.ca_missing", path=ca_file)
        sync = dataclasses.replace(service.settings.sync, engine_url=engine_url,
                                   ca_bundle=ca_file or service.settings.sync.ca_bundle)
        runner = self._ensure_runner()
        assert runner is not None
        try:
            credential = enroll_station(service.settings.replace(sync=sync), code,
                                        runner.credentials)
        except (SyncError, SyncConfigError, CredentialError) as error:
            raise EnrollmentError(error.text_key, **error.text_values) from error
        service.change_settings(session, {"sync": {"engine_url": sync.engine_url,
                                                   "ca_bundle": sync.ca_bundle}}, config_file)
        self._restart_runner()
        return credential

    def _restart_runner(self) -> None:
        """Stop the runner and build a new one from the service's current settings."""
        with self._lock:
            old, self._runner = self._runner, None
        if old is not None:
            old.stop()
        self._ensure_runner()

    def retry_refused(self, session: Session) -> list[int]:
        """Put every refused capture back in the queue (audited as ``session``'s operator).

        Raises:
            PermissionDeniedError: Unless the session may change the station's configuration.
            SessionExpiredError: If the session can no longer be used.
        """
        service: StationService | None = self._service_provider()
        runner = self._ensure_runner()
        if service is None or runner is None:
            raise SyncConfigError("error.sync.opening")
        service.auth.require(session, can_change_station_settings)
        return runner.retry_refused(actor_id=session.operator_id)

    def stop(self) -> None:
        """Stop the background thread (on application quit)."""
        with self._lock:
            if self._runner is not None:
                self._runner.stop()
