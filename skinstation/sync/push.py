"""Pushing the outbox: every saved capture goes to the engine, in order, exactly once.

For each unconfirmed entry, oldest first: mark it ``sent`` (one more attempt), upload, check
the engine's receipt names the same sha256, then mark it ``confirmed`` (with its audit row, in
one transaction). A crash or a cut connection leaves the entry ``sent`` or ``pending``; the
next round uploads it again, and the engine recognises a capture it already has (200) instead
of storing it twice. Nothing local is ever deleted by sync.

One bad capture never blocks the others:

* The engine refuses the capture itself (400, 409, 413, 415, 422), its receipt does not match,
  or the local record cannot be sent (image gone or altered, a field the protocol refuses):
  the entry is set aside as ``refused`` with the reason and the round goes on. An
  administrator puts it back after a fix (``skinstation sync retry``, the sync panel).
* A server error (5xx) on one capture: it stays pending and the round goes on. The error counts
  against the capture once the engine is seen taking other uploads in the same round, so an
  engine that is down never gets captures set aside; after ``sync.max_server_errors`` counted
  errors the capture is refused. Two server errors in a row end the round (engine likely down),
  uncounted.
* The network is down, or the station itself is refused (401 revoked token, 403, 404 no such
  route, 429 rate limit...): the round ends, the entry stays pending, the runner backs off.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from pydantic import ValidationError

from skinstation.settings import Settings
from skinstation.storage import (
    ImageIntegrityError,
    ImageMissingError,
    NotFoundError,
    Outbox,
    OutboxEntry,
    OutboxState,
    SyncRecords,
)
from skinstation.storage.models import Capture
from skinstation.sync.client import (
    CredentialRejectedError,
    EngineClient,
    EngineRejectedError,
    EngineServerError,
    EngineUnreachableError,
)

CAPTURE_REFUSALS = frozenset({400, 409, 413, 415, 422})
"""4xx answers that refuse the capture itself (anything else is about the station or route)."""
SERVER_ERRORS_ENDING_A_ROUND = 2
"""Server errors in a row (on different captures) after which the round ends."""


@dataclass
class PushResult:
    """What one push round did.

    Attributes:
        uploaded: Captures the engine stored.
        already_on_engine: Captures the engine already had (a retried upload).
        refused: Captures set aside as refused in this round, with the reason.
        server_errors: Captures that got a counted server error and stay pending.
        waiting: Captures not sent yet because they are younger than ``settle_seconds``.
    """

    uploaded: int = 0
    already_on_engine: int = 0
    refused: dict[int, str] = field(default_factory=dict)
    server_errors: dict[int, str] = field(default_factory=dict)
    waiting: int = 0


def _saved_at(records: SyncRecords, capture_id: int) -> datetime | None:
    with records.database.transaction() as session:
        capture = session.get(Capture, capture_id)
        return None if capture is None else capture.saved_at


def push_outbox(
    settings: Settings,
    records: SyncRecords,
    outbox: Outbox,
    client: EngineClient,
    *,
    now: datetime,
    stop: threading.Event | None = None,
) -> PushResult:
    """Upload unconfirmed captures, oldest first, each at most once per round.

    Raises:
        EngineUnreachableError: The engine went away, or answered two captures in a row with
            a server error (:class:`EngineServerError`); the entries stay for the next round.
        EngineRejectedError: The engine refused the station rather than a capture
            (:class:`CredentialRejectedError` for 401); the entry stays pending.
    """
    pusher = _Pusher(settings, records, outbox, client)
    try:
        for entry in _due(settings, records, outbox, pusher, now, stop):
            pusher.push(entry.capture_id, entry.state)
    except BaseException:
        pusher.release()
        raise
    pusher.finish()
    return pusher.result


def _due(settings: Settings, records: SyncRecords, outbox: Outbox, pusher: _Pusher,
         now: datetime, stop: threading.Event | None) -> Iterator[OutboxEntry]:
    """Entries to send now, oldest first, skipping those already tried in this round."""
    settle = timedelta(seconds=settings.sync.settle_seconds)
    while stop is None or not stop.is_set():
        batch = settings.sync.batch_size + len(pusher.tried)
        entries = [e for e in outbox.unconfirmed(limit=batch) if e.capture_id not in pusher.tried]
        if not entries:
            return
        for entry in entries:
            if stop is not None and stop.is_set():
                return
            saved_at = _saved_at(records, entry.capture_id)
            if saved_at is not None and now - saved_at < settle:
                pusher.result.waiting = len(entries)  # newer ones are younger still
                return
            yield entry


class _Pusher:
    """One round's uploads, and the server errors not yet counted against their capture."""

    def __init__(self, settings: Settings, records: SyncRecords, outbox: Outbox,
                 client: EngineClient) -> None:
        self.records = records
        self.outbox = outbox
        self.client = client
        self.include_name = settings.sync.send_patient_names and settings.store_patient_names
        self.max_server_errors = settings.sync.max_server_errors
        self.result = PushResult()
        self.tried: set[int] = set()
        self.streak: list[tuple[int, str]] = []
        self.engine_answered = False

    def push(self, capture_id: int, state: str) -> None:
        """Send one capture and record the outcome (see the module docstring)."""
        self.tried.add(capture_id)
        try:
            upload = self.records.upload_of(capture_id, include_patient_name=self.include_name)
        except (ImageMissingError, ImageIntegrityError, NotFoundError, ValueError) as error:
            self._refuse(capture_id, f"local capture unusable, not sent: {_describe(error)}")
            return
        if state == OutboxState.PENDING.value:
            self.outbox.mark_sent(capture_id)
        try:
            status, receipt = self.client.upload_capture(upload.document, upload.image)
        except EngineServerError as error:
            self.streak.append((capture_id, str(error)))
            if len(self.streak) >= SERVER_ERRORS_ENDING_A_ROUND:
                raise
            return
        except (EngineUnreachableError, CredentialRejectedError) as error:
            self.outbox.mark_failed(capture_id, str(error))
            raise
        except EngineRejectedError as error:
            if error.status not in CAPTURE_REFUSALS:
                self.outbox.mark_failed(capture_id, str(error))
                raise
            self._answered()
            self._refuse(capture_id, str(error))
            return
        self._answered()
        expected = upload.document.capture.image_sha256
        if receipt.image_sha256 != expected or receipt.uid != upload.document.capture.uid:
            self._refuse(capture_id, f"engine receipt {receipt} does not match capture "
                                     f"{capture_id} (sha256 {expected}); not confirmed")
            return
        duplicate = status == 200
        self.outbox.mark_confirmed(capture_id, engine_capture_id=receipt.capture_id,
                                   duplicate=duplicate)
        if duplicate:
            self.result.already_on_engine += 1
        else:
            self.result.uploaded += 1

    def finish(self) -> None:
        """End of the round: count the last server errors if the engine took other uploads."""
        if self.engine_answered:
            self._answered()
        else:
            self.release()

    def release(self) -> None:
        """Put the uncounted server-error captures back to pending without counting them."""
        streak, self.streak = self.streak, []
        for capture_id, error in streak:
            self.outbox.mark_failed(capture_id, error)

    def _answered(self) -> None:
        """The engine is taking uploads: the server errors before were about their capture."""
        self.engine_answered = True
        streak, self.streak = self.streak, []
        for capture_id, error in streak:
            entry = self.outbox.mark_failed(capture_id, error, server_error=True)
            if entry.server_errors >= self.max_server_errors:
                self._refuse(capture_id, f"{error}; set aside after {entry.server_errors} "
                                         "server errors")
            else:
                self.result.server_errors[capture_id] = error

    def _refuse(self, capture_id: int, reason: str) -> None:
        entry = self.outbox.mark_refused(capture_id, reason)
        self.result.refused[capture_id] = entry.last_error or reason


def _describe(error: Exception) -> str:
    """One line naming what is wrong with a local record."""
    if isinstance(error, ValidationError):
        return "; ".join(f"{'.'.join(str(part) for part in problem['loc'])}: {problem['msg']}"
                         for problem in error.errors())
    return str(error)
