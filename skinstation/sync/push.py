"""Pushing the outbox: every saved capture goes to the engine, in order, exactly once.

For each unconfirmed entry, oldest first: mark it ``sent`` (one more attempt), upload, check
the engine's receipt names the same sha256, then mark it ``confirmed``. A crash or a cut
connection leaves the entry ``sent`` or ``pending``; the next round uploads it again, and the
engine recognises a capture it already has (200) instead of storing it twice. Nothing local is
ever deleted by sync. A network failure ends the round (order is kept, the runner backs off);
a capture the engine refuses (422/409/413) is left pending with the reason and skipped so it
cannot block the captures behind it.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from skinstation.settings import Settings
from skinstation.storage import (
    ImageIntegrityError,
    ImageMissingError,
    NotFoundError,
    Outbox,
    OutboxState,
    SyncRecords,
)
from skinstation.storage.models import Capture
from skinstation.sync.client import (
    CredentialRejectedError,
    EngineClient,
    EngineRejectedError,
    EngineUnreachableError,
)


@dataclass
class PushResult:
    """What one push round did."""

    uploaded: int = 0
    already_on_engine: int = 0
    refused: dict[int, str] = field(default_factory=dict)
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
    """Upload unconfirmed captures, oldest first, until the outbox is empty or a failure.

    Raises:
        EngineUnreachableError: The engine went away (the entry stays for the next round).
        CredentialRejectedError: The token was refused (the entry stays pending).
    """
    result = PushResult()
    settle = timedelta(seconds=settings.sync.settle_seconds)
    include_name = settings.sync.send_patient_names and settings.store_patient_names
    while stop is None or not stop.is_set():
        batch = settings.sync.batch_size + len(result.refused)  # refused ones stay unconfirmed
        entries = [e for e in outbox.unconfirmed(limit=batch)
                   if e.capture_id not in result.refused]
        if not entries:
            return result
        for entry in entries:
            if stop is not None and stop.is_set():
                return result
            saved_at = _saved_at(records, entry.capture_id)
            if saved_at is not None and now - saved_at < settle:
                result.waiting = len(entries)  # newer ones are younger still
                return result
            _push_one(records, outbox, client, entry.capture_id, entry.state, include_name,
                      result)
    return result


def _push_one(records: SyncRecords, outbox: Outbox, client: EngineClient, capture_id: int,
              state: str, include_name: bool, result: PushResult) -> None:
    try:
        upload = records.upload_of(capture_id, include_patient_name=include_name)
    except (ImageMissingError, ImageIntegrityError, NotFoundError, ValueError) as error:
        outbox.mark_failed(capture_id, f"local capture unusable, not sent: {error}")
        result.refused[capture_id] = str(error)
        return
    if state == OutboxState.PENDING.value:
        outbox.mark_sent(capture_id)
    try:
        status, receipt = client.upload_capture(upload.document, upload.image)
    except (EngineUnreachableError, CredentialRejectedError) as error:
        outbox.mark_failed(capture_id, str(error))
        raise
    except EngineRejectedError as error:
        outbox.mark_failed(capture_id, str(error))
        result.refused[capture_id] = str(error)
        return
    expected = upload.document.capture.image_sha256
    if receipt.image_sha256 != expected or receipt.uid != upload.document.capture.uid:
        message = (f"engine receipt {receipt} does not match capture {capture_id} "
                   f"(sha256 {expected}); not confirmed")
        outbox.mark_failed(capture_id, message)
        result.refused[capture_id] = message
        return
    outbox.mark_confirmed(capture_id)
    duplicate = status == 200
    records.record_uploaded(capture_id, receipt.capture_id, duplicate)
    if duplicate:
        result.already_on_engine += 1
    else:
        result.uploaded += 1
