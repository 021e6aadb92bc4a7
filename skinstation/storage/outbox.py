"""The sync outbox: one row per saved capture, enqueued in the capture's own transaction.

State machine: ``pending`` → (``mark_sent``) → ``sent`` → (``mark_confirmed``) → ``confirmed``;
``mark_failed`` puts a pending or sent entry back to ``pending`` with the error and one more
attempt. Confirming also stamps the capture's ``uploaded_at``.
"""

from __future__ import annotations

from sqlalchemy import func, select

from skinstation.core.timeutil import Clock, utc_now
from skinstation.storage.database import Database
from skinstation.storage.errors import NotFoundError, StorageError
from skinstation.storage.models import Capture, OutboxEntry, OutboxState

MAX_ERROR_LENGTH = 2000


class Outbox:
    """Access to the outbox for the sync worker.

    Args:
        database: The open database.
        clock: Source of "now".
    """

    def __init__(self, database: Database, *, clock: Clock = utc_now) -> None:
        self.database = database
        self.clock = clock

    def pending(self, limit: int = 100) -> list[OutboxEntry]:
        """Return pending entries, oldest first."""
        with self.database.transaction() as session:
            stmt = (
                select(OutboxEntry)
                .where(OutboxEntry.state == OutboxState.PENDING.value)
                .order_by(OutboxEntry.id)
                .limit(limit)
            )
            return list(session.scalars(stmt))

    def unconfirmed(self, limit: int = 100) -> list[OutboxEntry]:
        """Return pending and sent entries, oldest first: what the engine has not confirmed.

        A ``sent`` entry is one whose upload was interrupted (crash, lost connection) before
        the engine's answer arrived; the sync client sends it again (uploads are idempotent).
        """
        with self.database.transaction() as session:
            stmt = (
                select(OutboxEntry)
                .where(OutboxEntry.state != OutboxState.CONFIRMED.value)
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
        return self._transition(capture_id, OutboxState.SENT, (OutboxState.PENDING,), None)

    def mark_confirmed(self, capture_id: int) -> OutboxEntry:
        """Record that the engine confirmed it stored the capture."""
        return self._transition(
            capture_id, OutboxState.CONFIRMED, (OutboxState.PENDING, OutboxState.SENT), None
        )

    def mark_failed(self, capture_id: int, error: str) -> OutboxEntry:
        """Put a capture back to pending with the error of the failed attempt."""
        return self._transition(
            capture_id, OutboxState.PENDING, (OutboxState.PENDING, OutboxState.SENT), error
        )

    def _transition(
        self,
        capture_id: int,
        target: OutboxState,
        allowed_from: tuple[OutboxState, ...],
        error: str | None,
    ) -> OutboxEntry:
        with self.database.transaction() as session:
            entry = session.scalar(select(OutboxEntry).where(OutboxEntry.capture_id == capture_id))
            if entry is None:
                raise NotFoundError(f"capture {capture_id} is not in the outbox")
            if OutboxState(entry.state) not in allowed_from:
                raise StorageError(
                    f"outbox entry of capture {capture_id} is {entry.state}; cannot move to "
                    f"{target.value}"
                )
            now = self.clock()
            entry.updated_at = now
            if target is OutboxState.SENT:
                entry.attempts += 1
                entry.sent_at = now
            elif target is OutboxState.CONFIRMED:
                entry.confirmed_at = now
                capture = session.get(Capture, capture_id)
                if capture is not None:
                    capture.uploaded_at = now
            if error is not None:
                entry.last_error = error[:MAX_ERROR_LENGTH]
            entry.state = target.value
            return entry
