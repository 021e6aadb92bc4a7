"""Visits: opening, closing (by hand or automatically), per-patient numbers.

A visit is one sitting of a patient. It is closed by the operator, or automatically:

* when the same patient gets a new visit (``reason: "new_visit"``), and
* when it is still open ``visit_max_open_hours`` after it was opened (``reason: "stale"``),
  the next time the station uses it: opening any visit, or saving a capture into it.

A capture aimed at a visit closed automatically goes to the visit that replaced it (the
``successor`` named in the closing's audit row); a capture aimed at a stale visit closes it
and opens that successor for the same patient. So a capture is never added to a closed
visit, and the frames of one multispectral sequence stay together in one visit. A visit
closed by hand refuses captures (:class:`~skinstation.storage.errors.VisitClosedError`).

Every closing is audited as ``visit.closed`` like a closing by hand, with
``{"automatic": true, "reason": ..., "successor": ...}`` as its detail.

A visit's ``number`` (see :class:`~skinstation.storage.models.Visit`) counts that patient's
visits in the order they were opened: a new patient's first visit is number 1.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session as DbSession

from skinstation.storage.audit import AuditAction
from skinstation.storage.audited_store import AuditedStore
from skinstation.storage.errors import VisitClosedError
from skinstation.storage.models import AuditEvent, Patient, Visit
from skinstation.storage.validation import active_operator, get_or_raise

STALE = "stale"
"""Reason of a closing: the visit stayed open longer than ``visit_max_open_hours``."""
NEW_VISIT = "new_visit"
"""Reason of a closing: the same patient got a new visit."""
MAX_SUCCESSORS = 32
"""How many automatic replacements are followed before a capture is refused."""


def open_limit(hours: float) -> timedelta | None:
    """How long a visit may stay open (``None``: forever, for ``hours`` <= 0)."""
    return timedelta(hours=hours) if hours > 0 else None


def is_stale(visit: Visit, now: datetime, limit: timedelta | None) -> bool:
    """Whether an open ``visit`` has been open longer than ``limit`` at ``now``."""
    return visit.closed_at is None and limit is not None and now - visit.opened_at > limit


def successor_of(session: DbSession, visit_id: int) -> int | None:
    """The visit that replaced ``visit_id`` when it was closed automatically, if any."""
    closing = session.scalar(
        select(AuditEvent)
        .where(
            AuditEvent.action == AuditAction.VISIT_CLOSED.value,
            AuditEvent.entity_type == "visit",
            AuditEvent.entity_id == str(visit_id),
        )
        .order_by(AuditEvent.id.desc())
        .limit(1)
    )
    if closing is None or not (closing.detail or {}).get("automatic"):
        return None
    successor = closing.detail.get("successor")
    return successor if isinstance(successor, int) else None


class VisitStore(AuditedStore):
    """The visit part of :class:`~skinstation.storage.StationStore`."""

    @property
    def visit_limit(self) -> timedelta | None:
        """How long a visit may stay open before it closes automatically (None: forever)."""
        return open_limit(self.database.settings.visit_max_open_hours)

    def open_visit(self, patient_id: int, *, operator_id: int) -> Visit:
        """Start a visit of a patient at this station.

        The patient's visits still open are closed first (reason ``new_visit``), and so is
        every visit open longer than the limit (reason ``stale``); each closing is audited.
        """
        with self.database.transaction() as session:
            active_operator(session, operator_id)
            get_or_raise(session, Patient, patient_id)
            earlier = list(session.scalars(
                select(Visit)
                .where(Visit.patient_id == patient_id, Visit.closed_at.is_(None))
                .order_by(Visit.id)
            ))
            visit = self._new_visit(session, patient_id, operator_id)
            now, limit = self.clock(), self.visit_limit
            for old in earlier:
                reason = STALE if is_stale(old, now, limit) else NEW_VISIT
                self._close_automatically(session, old, operator_id, reason, visit.id)
            self._close_stale(session, operator_id)
            return visit

    def close_visit(self, visit_id: int, *, operator_id: int) -> Visit:
        """End a visit (closing an already closed visit keeps its first closing time)."""
        with self.database.transaction() as session:
            active_operator(session, operator_id)
            visit = get_or_raise(session, Visit, visit_id)
            if visit.closed_at is None:
                visit.closed_at = self.clock()
                self._audit(session, operator_id, AuditAction.VISIT_CLOSED, "visit", visit.id)
            return visit

    def close_stale_visits(self, *, actor_id: int | None) -> list[int]:
        """Close every visit open longer than the limit (audited); returns their ids."""
        with self.database.transaction() as session:
            return self._close_stale(session, actor_id)

    def get_visit(self, visit_id: int) -> Visit:
        """A visit's row, with its per-patient ``number`` (no patient data: not audited)."""
        with self.database.transaction() as session:
            return get_or_raise(session, Visit, visit_id)

    # -- inside a transaction ---------------------------------------------------------------

    def _capture_visit(self, session: DbSession, visit_id: int, operator_id: int) -> Visit:
        """The open visit a capture aimed at ``visit_id`` goes to (closing a stale one).

        Raises:
            NotFoundError: If the visit does not exist.
            VisitClosedError: If it was closed by hand (or replaced too many times).
        """
        visit = get_or_raise(session, Visit, visit_id)
        for _ in range(MAX_SUCCESSORS):
            if visit.closed_at is None:
                break
            successor = successor_of(session, visit.id)
            if successor is None:
                break
            visit = get_or_raise(session, Visit, successor)
        if visit.closed_at is not None:
            raise VisitClosedError(f"visit {visit_id} is closed; open a new visit to capture")
        if is_stale(visit, self.clock(), self.visit_limit):
            successor_visit = self._new_visit(session, visit.patient_id, operator_id)
            self._close_automatically(session, visit, operator_id, STALE, successor_visit.id)
            visit = successor_visit
        return visit

    def _close_stale(self, session: DbSession, actor_id: int | None) -> list[int]:
        limit = self.visit_limit
        if limit is None:
            return []
        cutoff = self.clock() - limit
        stale = list(session.scalars(
            select(Visit)
            .where(Visit.closed_at.is_(None), Visit.opened_at < cutoff)
            .order_by(Visit.id)
        ))
        for visit in stale:
            self._close_automatically(session, visit, actor_id, STALE, None)
        return [visit.id for visit in stale]

    def _new_visit(self, session: DbSession, patient_id: int, operator_id: int) -> Visit:
        visit = Visit(
            patient_id=patient_id,
            operator_id=operator_id,
            station_id=self.station_id,
            opened_at=self.clock(),
        )
        session.add(visit)
        session.flush()
        session.refresh(visit)  # loads the computed per-patient number
        self._audit(session, operator_id, AuditAction.VISIT_OPENED, "visit", visit.id)
        return visit

    def _close_automatically(self, session: DbSession, visit: Visit, actor_id: int | None,
                             reason: str, successor: int | None) -> None:
        visit.closed_at = self.clock()
        detail = {"automatic": True, "reason": reason, "successor": successor,
                  "opened_at": visit.opened_at.isoformat()}
        self._audit(session, actor_id, AuditAction.VISIT_CLOSED, "visit", visit.id, detail)
        session.flush()
