"""Connects the station window's sync panel to the real sync runner, once the database is open.

The station service (and so the database) is created in a worker thread after the window
opens; :class:`StationSync` builds the :class:`~skinstation.sync.runner.SyncRunner` on the
first status request after that, starts its background thread when an engine URL is set,
and stops it when the application quits. Received models are installed through the station's
model manager, which verifies them and switches atomically. Captures the engine refused are put
back in the queue by :meth:`StationSync.retry_refused`, for administrators only.
"""

from __future__ import annotations

import threading
from typing import Any

from skinstation.auth import Session, can_change_station_settings
from skinstation.services.station import StationService
from skinstation.sync.runner import SyncRunner
from skinstation.ui.sync_status import SyncStatus


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
            return SyncStatus(0, None, "The station database is still opening.")
        status = runner.status()
        if not status.engine_url:
            return SyncStatus(status.queue_length, status.last_success,
                              "Sync not configured: no engine URL in the settings.",
                              status.refused_captures)
        if not status.enrolled:
            return SyncStatus(status.queue_length, status.last_success,
                              "Not enrolled: run 'skinstation sync enroll CODE' as IT admin.",
                              status.refused_captures)
        return status

    def sync_now(self) -> None:
        """Start a sync round now (if the station is configured)."""
        runner = self._ensure_runner()
        if runner is not None and runner.settings.sync.engine_url:
            runner.sync_now()

    def retry_refused(self, session: Session) -> list[int]:
        """Put every refused capture back in the queue (audited as ``session``'s operator).

        Raises:
            PermissionDeniedError: Unless the session may change the station's configuration.
            SessionExpiredError: If the session can no longer be used.
        """
        service: StationService | None = self._service_provider()
        runner = self._ensure_runner()
        if service is None or runner is None:
            raise RuntimeError("The station database is still opening.")
        service.auth.require(session, can_change_station_settings)
        return runner.retry_refused(actor_id=session.operator_id)

    def stop(self) -> None:
        """Stop the background thread (on application quit)."""
        with self._lock:
            if self._runner is not None:
                self._runner.stop()
