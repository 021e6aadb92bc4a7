r"""The sync outbox: one row per saved capture, enqueued in the capture's own transaction.

State machine::

    pending --mark_sent--> sent --mark_confirmed--> confirmed
       ^  \                 |
       |   `--mark_refused---+--> refused --retry_refused--> pending
       `----mark_failed-----'

``mark_failed`` puts a pending or sent entry back to ``pending`` with the error (counting a
server error when told so). ``mark_refused`` sets a capture the engine will not take aside with
its reason, so it no longer blocks the queue; nothing is deleted, and ``retry_refused`` puts it
back after a fix. Confirming stamps the capture's ``uploaded_at`` and writes its
``capture.uploaded`` audit row in the same transaction, so a crash leaves both or neither.
"""

from __future__ import annotations

import unicodedata
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session as DbSession

from skinstation.storage.audited_store import AuditedStore
from skinstation.storage.errors import NotFoundError, StorageError
from skinstation.storage.models import Capture, OutboxEntry, OutboxState

MAX_ERROR_LENGTH = 2000
CAPTURE_UPLOADED = "capture.uploaded"
OUTBOX_REFUSED = "outbox.refused"
OUTBOX_RETRIED = "outbox.retried"
UNCONFIRMED = (OutboxState.PENDING, OutboxState.SENT)


def clean_reason(text: str) -> str:
    r"""An error message safe to store and show on one line, truncated.

    Line breaks and tabs become spaces, other control characters ``\xNN``: engine messages
    may quote the refused value (a pseudonym holding NUL, say), and PostgreSQL refuses NUL in
    text; the reason must be storable, or recording the refusal would fail too.
    """
    cleaned = "".join(
        " " if char in "\n\r\t" else
        ascii(char)[1:-1] if unicodedata.category(char) in ("Cc", "Zl", "Zp") else char
        for char in text
    )
    return cleaned[:MAX_ERROR_LENGTH]


class Outbox(AuditedStore):
    """Access to the outbox for the sync worker.

    Args:
        database: The open database.
        clock: Source of "now".
    """

    def pending(self, limit: int = 100) -> list[OutboxEntry]:
        """Return pending entries, oldest first."""
        return self._in_states((OutboxState.PENDING,), limit)

    def unconfirmed(self, limit: int = 100) -> list[OutboxEntry]:
        """Return pending and sent entries, oldest first: what the sync client still sends.

        A ``sent`` entry is one whose upload was interrupted (crash, lost connection) before
        the engine's answer arrived; the sync client sends it again (uploads are idempotent).
        Refused entries are not included: they wait for :meth:`retry_refused`.
        """
        return self._in_states(UNCONFIRMED, limit)

    def refused(self, limit: int = 1000) -> list[OutboxEntry]:
        """Return refused entries, oldest first (``last_error`` holds the reason)."""
        return self._in_states((OutboxState.REFUSED,), limit)

    def _in_states(self, states: tuple[OutboxState, ...], limit: int) -> list[OutboxEntry]:
        with self.database.transaction() as session:
            stmt = (
                select(OutboxEntry)
                .where(OutboxEntry.state.in_([state.value for state in states]))
                .order_by(OutboxEntry.id)
                .limit(limit)
            )
            return list(session.scalars(stmt))

    def counts(self) -> dict[OutboxState, int]:
        """Return the number of entries in each state (every state present, zero included)."""
        with self.database.transaction() as session:
            rows = session.execute(
                select(OutboxEntry.state, func.count()).group_by(OutboxEntry.state)
            )
            found = {OutboxState(state): count for state, count in rows}
        return {state: found.get(state, 0) for state in OutboxState}

    def mark_sent(self, capture_id: int) -> OutboxEntry:
        """Record that a capture was handed to the engine (one more attempt)."""
        with self.database.transaction() as session:
            entry = self._entry(session, capture_id, OutboxState.SENT, (OutboxState.PENDING,))
            entry.attempts += 1
            entry.sent_at = entry.updated_at
            return entry

    def mark_confirmed(self, capture_id: int, *, engine_capture_id: int,
                       duplicate: bool) -> OutboxEntry:
        """Record that the engine confirmed it stored the capture, with its audit row.

        Args:
            capture_id: Local capture id.
            engine_capture_id: The engine's id of the capture (from its receipt).
            duplicate: The engine already had it (a retried upload).
        """
        with self.database.transaction() as session:
            entry = self._entry(session, capture_id, OutboxState.CONFIRMED, UNCONFIRMED)
            entry.confirmed_at = entry.updated_at
            capture = session.get(Capture, capture_id)
            if capture is not None:
                capture.uploaded_at = entry.updated_at
            detail = {"engine_capture_id": engine_capture_id, "duplicate": duplicate}
            self._audit(session, None, CAPTURE_UPLOADED, "capture", capture_id, detail)
            return entry

    def mark_failed(self, capture_id: int, error: str, *,
                    server_error: bool = False) -> OutboxEntry:
        """Put a capture back to pending with the error of the failed attempt.

        Args:
            capture_id: Local capture id.
            error: What went wrong.
            server_error: The engine answered this capture with a server error (5xx); counted
                in ``server_errors`` (the sync client refuses it after too many).
        """
        with self.database.transaction() as session:
            entry = self._entry(session, capture_id, OutboxState.PENDING, UNCONFIRMED)
            entry.last_error = clean_reason(error)
            if server_error:
                entry.server_errors += 1
            return entry

    def mark_refused(self, capture_id: int, reason: str) -> OutboxEntry:
        """Set a capture aside as refused with ``reason`` (audited); it stops blocking others.

        Nothing is deleted: the capture and its image stay, and :meth:`retry_refused` puts
        the entry back to pending.
        """
        with self.database.transaction() as session:
            entry = self._entry(session, capture_id, OutboxState.REFUSED, UNCONFIRMED)
            entry.last_error = clean_reason(reason)
            entry.refused_at = entry.updated_at
            detail: dict[str, Any] = {"reason": entry.last_error,
                                      "server_errors": entry.server_errors}
            self._audit(session, None, OUTBOX_REFUSED, "capture", capture_id, detail)
            return entry

    def retry_refused(self, capture_id: int | None = None, *,
                      actor_id: int | None = None) -> list[int]:
        """Put refused entries back to pending (server errors reset), each audited.

        Args:
            capture_id: Only this capture (every refused one if None).
            actor_id: The operator who asked (None: the command line).

        Returns:
            The capture ids put back, oldest first.

        Raises:
            NotFoundError: ``capture_id`` is not in the outbox.
            StorageError: ``capture_id`` is not refused.
        """
        with self.database.transaction() as session:
            stmt = select(OutboxEntry).order_by(OutboxEntry.id)
            if capture_id is None:
                stmt = stmt.where(OutboxEntry.state == OutboxState.REFUSED.value)
            else:
                stmt = stmt.where(OutboxEntry.capture_id == capture_id)
            entries = list(session.scalars(stmt))
            if capture_id is not None and not entries:
                raise NotFoundError(f"capture {capture_id} is not in the outbox")
            if capture_id is not None and entries[0].state != OutboxState.REFUSED.value:
                raise StorageError(f"outbox entry of capture {capture_id} is "
                                   f"{entries[0].state}; only refused captures can be retried")
            now = self.clock()
            for entry in entries:
                detail = {"reason": entry.last_error, "server_errors": entry.server_errors}
                entry.state, entry.updated_at = OutboxState.PENDING.value, now
                entry.server_errors, entry.refused_at = 0, None
                self._audit(session, actor_id, OUTBOX_RETRIED, "capture", entry.capture_id,
                            detail)
            return [entry.capture_id for entry in entries]

    def _entry(self, session: DbSession, capture_id: int, target: OutboxState,
               allowed_from: tuple[OutboxState, ...]) -> OutboxEntry:
        """The entry of ``capture_id``, moved to ``target`` if its state allows it."""
        entry = session.scalar(select(OutboxEntry).where(OutboxEntry.capture_id == capture_id))
        if entry is None:
            raise NotFoundError(f"capture {capture_id} is not in the outbox")
        if OutboxState(entry.state) not in allowed_from:
            raise StorageError(
                f"outbox entry of capture {capture_id} is {entry.state}; cannot move to "
                f"{target.value}"
            )
        entry.state, entry.updated_at = target.value, self.clock()
        return entry
