"""The station's background sync: a thread that pushes the outbox and pulls reviews and models.

The UI's sync panel uses::

    runner = SyncRunner(settings, database, installer=install_model, on_status=panel.update)
    runner.start()            # background thread, never blocks the caller
    runner.status()           # SyncStatus snapshot: queue length, last success, last error...
    runner.sync_now()         # wake the thread for an immediate round
    runner.retry_refused()    # put the captures the engine refused back in the queue
    runner.stop()

``on_status`` is called from the sync thread after every change; a Qt UI must hand the snapshot
to its own thread (e.g. a queued signal). ``sync_once()`` runs one round in the caller's thread
(the CLI and tests). After a failed round the thread waits ``backoff_seconds * 2**failures``
(capped at ``interval_seconds``) before trying again.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from skinstation.core.i18n import TranslatableError
from skinstation.core.timeutil import Clock, utc_now
from skinstation.settings import Settings
from skinstation.storage import Database, Outbox, OutboxState, SyncRecords
from skinstation.sync.client import (
    CredentialRejectedError,
    EngineClient,
    EngineUnreachableError,
    SyncError,
)
from skinstation.sync.credentials import CredentialError, CredentialStore, StationCredential
from skinstation.sync.erasures import retention_if_due, send_erasures
from skinstation.sync.pull import (
    INSTALLED_VERSION,
    ModelInstaller,
    installed_deployment,
    pull_model,
    pull_reviews,
)
from skinstation.sync.push import push_outbox
from skinstation.sync.transport import SyncConfigError

log = logging.getLogger(__name__)

LAST_SUCCESS, LAST_ERROR, LAST_ERROR_AT = "status.last_success", "status.last_error", \
    "status.last_error_at"
LAST_ERROR_TEXT = "status.last_error_text"
"""The last error's text key and values (JSON), so each front end words it in its language."""


@dataclass(frozen=True)
class SyncStatus:
    """A snapshot for the sync panel.

    Attributes:
        state: ``not_enrolled``, ``idle``, ``syncing``, ``offline`` (engine unreachable),
            ``error`` (credential refused, model refused, bad configuration) or ``stopped``.
        enrolled: Whether a credential is in the keyring.
        engine_url: Where it syncs to.
        queue_length: Captures the engine has not confirmed yet.
        confirmed: Captures the engine has confirmed.
        last_attempt: Start of the last round.
        last_success: End of the last fully successful round (kept across restarts).
        last_error: The last problem, in words (kept across restarts until a success).
        last_error_at: When it happened.
        consecutive_failures: Failed rounds since the last success.
        next_attempt_at: When the background thread tries again.
        model_version: Engine model installed on this station (``None``: the bundled one).
        model_deployment: Its deployment number.
        refused_captures: Local capture ids set aside as refused (by the engine, or unusable
            here), with the reason; they wait for :meth:`SyncRunner.retry_refused`.
        last_error_text: ``(key, values)`` of ``last_error`` in the text catalogue, or None
            (a problem without a key: show ``last_error``).
    """

    state: str
    enrolled: bool
    engine_url: str
    queue_length: int
    confirmed: int
    last_attempt: datetime | None
    last_success: datetime | None
    last_error: str | None
    last_error_at: datetime | None
    consecutive_failures: int
    next_attempt_at: datetime | None
    model_version: str | None
    model_deployment: int
    refused_captures: dict[int, str]
    last_error_text: tuple[str, dict[str, Any]] | None = None


def _error_text(stored: str | None) -> tuple[str, dict[str, Any]] | None:
    """The ``(key, values)`` kept under :data:`LAST_ERROR_TEXT`, or None."""
    try:
        text = json.loads(stored) if stored else {}
    except ValueError:
        return None
    if not isinstance(text, dict) or not isinstance(text.get("key"), str):
        return None
    values = text.get("values")
    return text["key"], dict(values) if isinstance(values, dict) else {}


def enroll_station(settings: Settings, code: str, credentials: CredentialStore,
                   *, replace: bool = False) -> StationCredential:
    """Enroll with the engine at ``settings.sync.engine_url`` and keep the credential.

    Raises:
        SyncConfigError: Already enrolled (without ``replace``) or an unsafe URL.
        SyncError: The engine refused the code or is unreachable.
    """
    if credentials.load() is not None and not replace:
        raise SyncConfigError("error.sync.already_enrolled")
    client = EngineClient(settings.sync)
    try:
        answer = client.enroll(code, settings.station_id)
    finally:
        client.close()
    credential = StationCredential(
        engine_url=client.base, station_id=answer.station_id,
        station_name=answer.station_name, token=answer.token,
        public_key=answer.public_key, key_id=answer.key_id)
    credentials.save(credential)
    return credential


class SyncRunner:
    """Runs sync rounds in the caller's thread or a background thread.

    Args:
        settings: Station settings (``sync`` section, ``station_id``, ``home``).
        database: The open station database.
        installer: Installs a verified model file (``ModelManager.install``); without it
            model updates are not pulled.
        credentials: Where the credential lives (the keyring entry for ``station_id``).
        on_status: Called with a new snapshot after every change (from the sync thread).
        clock: Source of "now".
    """

    def __init__(self, settings: Settings, database: Database, *,
                 installer: ModelInstaller | None = None,
                 credentials: CredentialStore | None = None,
                 on_status: Callable[[SyncStatus], None] | None = None,
                 clock: Clock = utc_now) -> None:
        self.settings = settings
        self.records = SyncRecords(database, clock=clock)
        self.outbox = Outbox(database, clock=clock)
        self.installer = installer
        self.credentials = credentials or CredentialStore(settings.station_id)
        self.on_status = on_status
        self.clock = clock
        self._round_lock = threading.Lock()
        self._state_lock = threading.Lock()
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self._state = "idle"
        self._failures = 0
        self._last_attempt: datetime | None = None
        self._next_attempt: datetime | None = None

    # -- status ----------------------------------------------------------------------------

    def status(self) -> SyncStatus:
        """A snapshot of the sync state (cheap; safe from any thread)."""
        counts = self.outbox.counts()
        refused = {entry.capture_id: entry.last_error or "" for entry in self.outbox.refused()}
        try:
            enrolled = self.credentials.load() is not None
        except CredentialError:
            enrolled = False
        error_at = self.records.get(LAST_ERROR_AT)
        success = self.records.get(LAST_SUCCESS)
        with self._state_lock:
            state = self._state if enrolled or self._state == "stopped" else "not_enrolled"
            return SyncStatus(
                state=state, enrolled=enrolled, engine_url=self.settings.sync.engine_url,
                queue_length=counts[OutboxState.PENDING] + counts[OutboxState.SENT],
                confirmed=counts[OutboxState.CONFIRMED], last_attempt=self._last_attempt,
                last_success=None if success is None else datetime.fromisoformat(success),
                last_error=self.records.get(LAST_ERROR) or None,
                last_error_at=None if error_at is None else datetime.fromisoformat(error_at),
                consecutive_failures=self._failures, next_attempt_at=self._next_attempt,
                model_version=self.records.get(INSTALLED_VERSION),
                model_deployment=installed_deployment(self.records),
                refused_captures=refused,
                last_error_text=_error_text(self.records.get(LAST_ERROR_TEXT)),
            )

    def _set_state(self, state: str) -> None:
        with self._state_lock:
            self._state = state
        self._notify()

    def _notify(self) -> None:
        if self.on_status is not None:
            try:
                self.on_status(self.status())
            except Exception:  # a UI callback must never stop sync
                log.exception("sync status callback failed")

    # -- one round -------------------------------------------------------------------------

    def sync_once(self) -> SyncStatus:
        """Push the outbox, pull reviews and the model; returns the resulting status."""
        with self._round_lock:
            self._last_attempt = self.clock()
            self._set_state("syncing")
            try:
                self._round()
            except EngineUnreachableError as error:
                self._failed("offline", error)
            except (CredentialRejectedError, CredentialError, SyncConfigError,
                    SyncError) as error:
                self._failed("error", error)
            else:
                self._succeeded()
            return self.status()

    def _round(self) -> None:
        credential = self.credentials.load()
        if credential is None:
            raise SyncConfigError("error.sync.not_enrolled")
        sync_settings = dataclasses.replace(
            self.settings.sync, engine_url=self.settings.sync.engine_url or credential.engine_url)
        client = EngineClient(sync_settings, token=credential.token)
        try:
            send_erasures(self.records.database, client, clock=self.clock)  # before uploads
            pushed = push_outbox(self.settings, self.records, self.outbox, client,
                                 now=self.clock(), stop=self._stop)
            pull_reviews(self.records, client)
            if self.installer is not None:
                pull_model(self.records, client, credential, self.installer,
                           self.settings.home / "models" / "incoming")
        finally:
            client.close()
        if pushed.refused:
            raise SyncError("error.sync.refused", count=len(pushed.refused),
                            reason=next(iter(pushed.refused.values())))
        if pushed.server_errors:
            raise SyncError("error.sync.server_errors", count=len(pushed.server_errors),
                            tries=self.settings.sync.max_server_errors,
                            reason=next(iter(pushed.server_errors.values())))

    def retry_refused(self, capture_id: int | None = None, *,
                      actor_id: int | None = None) -> list[int]:
        """Put refused captures back in the queue (after a fix) and wake the sync thread.

        Args:
            capture_id: Only this capture (every refused one if None).
            actor_id: The operator who asked (audited; None: the command line).

        Returns:
            The capture ids put back, oldest first.

        Raises:
            NotFoundError: ``capture_id`` is not in the outbox.
            StorageError: ``capture_id`` is not refused.
        """
        retried = self.outbox.retry_refused(capture_id, actor_id=actor_id)
        if retried:
            self.sync_now()
            self._notify()
        return retried

    def _succeeded(self) -> None:
        self._failures = 0
        self.records.put(LAST_SUCCESS, self.clock().isoformat())
        self.records.put(LAST_ERROR, "")
        self.records.put(LAST_ERROR_TEXT, "")
        with self._state_lock:
            self._state = "idle"
        self._notify()

    def _failed(self, state: str, error: BaseException | str) -> None:
        message = str(error)
        self._failures += 1
        self.records.put(LAST_ERROR, message)
        self.records.put(LAST_ERROR_TEXT, json.dumps(
            {"key": error.text_key, "values": error.text_values}
            if isinstance(error, TranslatableError) else {}))
        self.records.put(LAST_ERROR_AT, self.clock().isoformat())
        log.warning("sync round failed: %s", message)
        with self._state_lock:
            self._state = state
        self._notify()

    # -- background thread -----------------------------------------------------------------

    def start(self) -> None:
        """Start the background thread (a no-op if it runs)."""
        if self._thread is not None and self._thread.is_alive():
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._loop, name="skinstation-sync", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 30.0) -> None:
        """Stop the background thread after the capture being sent (waits up to ``timeout``)."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)
        self._set_state("stopped")

    def sync_now(self) -> None:
        """Ask the background thread for a round now."""
        self._wake.set()

    @property
    def running(self) -> bool:
        """Whether the background thread is alive."""
        return self._thread is not None and self._thread.is_alive()

    def delay(self) -> float:
        """Seconds until the next round: the interval, or the backoff after failures."""
        sync = self.settings.sync
        if self._failures == 0:
            return sync.interval_seconds
        return min(sync.interval_seconds, sync.backoff_seconds * 2.0 ** self._failures)

    def _loop(self) -> None:
        while not self._stop.is_set():
            retention_if_due(self.records.database, self.clock)  # at most once a day
            try:
                self.sync_once()
            except Exception as error:  # keep the thread alive whatever happens
                log.exception("sync round crashed")
                self._failed("error", f"sync crashed: {error!r}")
            wait = self.delay()
            self._next_attempt = self.clock() + timedelta(seconds=wait)
            self._notify()
            self._wake.wait(wait)
            self._wake.clear()
        self._next_attempt = None
