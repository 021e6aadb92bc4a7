"""Erasing a patient's data from the station, and the retention period.

:func:`erase_patient` deletes, in ONE transaction, the patient's engine reviews, labels,
predictions, outbox entries, captures, lesions, visits and the patient row, and queues an
:class:`~skinstation.storage.models.Erasure` for the engine (sent by
:mod:`skinstation.sync.erasures` before any upload). ``labels`` is append-only: its DELETE
trigger is lifted for this transaction only (:func:`skinstation.core.sqlbase.deletes_allowed`);
the audit log is never touched. Its one new row, ``patient.erased`` about the erasure, holds
counts and the reason, never the pseudonym, a name or the patient id; older rows that name the
patient's numeric id stay (the log is hash-chained). Image files go after the commit, each only
if no remaining capture names it (the store is content-addressed); a crash in between leaves
orphans that start-up recovery deletes.

:func:`apply_retention` erases the captures taken more than ``retention_years`` ago the same
way (reason ``retention``, one audit row); :func:`run_retention_if_due` runs it at most once a
day (the last run is kept in ``sync_state``).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import ColumnElement, CursorResult, delete, func, select, update
from sqlalchemy.orm import Session

from skinstation.core.sqlbase import deletes_allowed
from skinstation.core.timeutil import Clock, as_utc, utc_now, years_before
from skinstation.storage.audit import record_audit
from skinstation.storage.database import Database
from skinstation.storage.errors import NotFoundError
from skinstation.storage.models import (
    Base,
    Capture,
    EngineReview,
    Erasure,
    ErasureReason,
    ErasureState,
    Label,
    Lesion,
    OutboxEntry,
    Patient,
    Prediction,
    ReviewDetail,
    SyncState,
    Visit,
)
from skinstation.storage.validation import active_operator, get_or_raise

log = logging.getLogger(__name__)

PATIENT_ERASED = "patient.erased"
CAPTURES_ERASED = "captures.erased"
ERASURE_CONFIRMED = "erasure.confirmed"
RETENTION_LAST_RUN = "retention.last_run"
RETENTION_INTERVAL = timedelta(days=1)
PATIENT_REASONS = (ErasureReason.PATIENT_REQUEST, ErasureReason.ENTERED_IN_ERROR)
_CHUNK = 500


@dataclass(frozen=True)
class ErasureCounts:
    """Rows one erasure deleted, by table (``image_files``: files no capture names any more)."""

    patients: int = 0
    visits: int = 0
    lesions: int = 0
    captures: int = 0
    predictions: int = 0
    labels: int = 0
    engine_reviews: int = 0
    outbox: int = 0
    image_files: int = 0

    def as_dict(self) -> dict[str, int]:
        """The counts as a JSON object (the audit row's detail)."""
        return asdict(self)


@dataclass(frozen=True)
class ErasureReport:
    """What an erasure did.

    Attributes:
        erasure_id: The queued erasure (the audit row's entity id).
        reason: Why.
        counts: Rows deleted, and image files no capture names any more.
        images_deleted: Image files actually removed from disk after the commit.
    """

    erasure_id: int
    reason: ErasureReason
    counts: ErasureCounts
    images_deleted: int


@dataclass(frozen=True)
class PendingErasure:
    """An erasure the engine has not confirmed yet (what the sync client sends)."""

    erasure_id: int
    reason: str
    pseudonym: str | None
    capture_uids: tuple[str, ...]


def parse_reason(reason: ErasureReason | str,
                 allowed: Sequence[ErasureReason] = tuple(ErasureReason)) -> ErasureReason:
    """The reason as the enum.

    Raises:
        ValueError: Not one of ``allowed`` (the message lists them).
    """
    try:
        parsed = ErasureReason(reason)
    except ValueError:
        parsed = None
    if parsed is None or parsed not in allowed:
        raise ValueError(f"erasure reason must be one of {', '.join(allowed)}; got {reason!r}")
    return parsed


def erase_patient(database: Database, patient_id: int, *, actor_id: int | None,
                  reason: ErasureReason | str, clock: Clock = utc_now) -> ErasureReport:
    """Erase a patient and everything recorded about them on this station.

    Args:
        database: The open station database.
        patient_id: The patient's local id.
        actor_id: The operator who erases (None: the command line).
        reason: ``patient_request`` or ``entered_in_error``.
        clock: Source of "now".

    Returns:
        The report; the erasure is queued for the engine.

    Raises:
        ValueError: Another reason.
        NotFoundError: No such patient (or operator).
        InactiveOperatorError: The operator is disabled.
    """
    parsed = parse_reason(reason, PATIENT_REASONS)
    with database.transaction() as session:
        if actor_id is not None:
            active_operator(session, actor_id)
        pseudonym = get_or_raise(session, Patient, patient_id).pseudonym
        visits = select(Visit.id).where(Visit.patient_id == patient_id)
        captures = _captures(session, Capture.visit_id.in_(visits))
        counts, refs = _delete_captures(session, captures)
        counts["lesions"] = _delete(session, Lesion,  # after their captures
                                    Lesion.patient_id == patient_id)
        counts["visits"] = _delete(session, Visit, Visit.patient_id == patient_id)
        counts["patients"] = _delete(session, Patient, Patient.id == patient_id)
        report = _queue(session, database, clock(), parsed, pseudonym, captures, actor_id,
                        counts, PATIENT_ERASED)
    return _finish(database, report, refs)


def apply_retention(database: Database, now: datetime, *,
                    years: int | None = None) -> ErasureReport | None:
    """Erase every capture taken more than ``years`` years before ``now``.

    The captures go with their predictions, labels, engine reviews and outbox entries, and so
    do visits opened before the cutoff that are left without captures; patients stay. One
    erasure (reason ``retention``) is queued for the engine and one audit row written.

    Args:
        database: The open station database.
        now: The current time (aware).
        years: The retention period (default ``settings.retention_years``; 0: keep forever).

    Returns:
        The report, or None when nothing was old enough (nothing is written then).
    """
    years = database.settings.retention_years if years is None else years
    if years < 0:
        raise ValueError(f"retention_years must be >= 0, got {years}")
    if years == 0:
        return None
    cutoff = years_before(as_utc(now), years)
    with database.transaction() as session:
        captures = _captures(session, Capture.capture_time < cutoff)
        if not captures:
            return None
        visits = {visit_id for _, _, _, visit_id in captures}
        counts, refs = _delete_captures(session, captures)
        for chunk in _chunks(sorted(visits)):
            emptied = (Visit.id.in_(chunk) & (Visit.opened_at < cutoff)
                       & ~select(Capture.id).where(Capture.visit_id == Visit.id).exists())
            counts["visits"] += _delete(session, Visit, emptied)
        report = _queue(session, database, as_utc(now), ErasureReason.RETENTION, None, captures,
                        None, counts, CAPTURES_ERASED, {"retention_years": years})
    return _finish(database, report, refs)


def run_retention_if_due(database: Database, now: datetime) -> ErasureReport | None:
    """Apply the retention period if it is set and did not run in the last day.

    Returns:
        The report, or None (retention off, ran less than a day ago, or nothing old enough).
    """
    if database.settings.retention_years == 0:
        return None
    now = as_utc(now)
    with database.transaction() as session:
        row = session.get(SyncState, RETENTION_LAST_RUN)
        # a last run "in the future" (the clock was set back) does not hold retention off
        if row is not None and timedelta(0) <= now - datetime.fromisoformat(
                row.value) < RETENTION_INTERVAL:
            return None
    report = apply_retention(database, now)
    with database.transaction() as session:
        row = session.get(SyncState, RETENTION_LAST_RUN)
        if row is None:
            session.add(SyncState(key=RETENTION_LAST_RUN, value=now.isoformat(), updated_at=now))
        else:
            row.value, row.updated_at = now.isoformat(), now
    if report is not None:
        log.warning("retention erased %d capture(s) taken more than %d year(s) ago",
                    report.counts.captures, database.settings.retention_years)
    return report


def pending_erasures(database: Database, limit: int = 100) -> list[PendingErasure]:
    """Erasures the engine has not confirmed, oldest first."""
    with database.transaction() as session:
        rows = session.scalars(select(Erasure).where(Erasure.state == ErasureState.PENDING.value)
                               .order_by(Erasure.id).limit(limit))
        return [PendingErasure(row.id, row.reason, row.pseudonym, tuple(row.capture_uids))
                for row in rows]


def confirm_erasure(database: Database, erasure_id: int, *, now: datetime,
                    engine_detail: dict[str, object]) -> None:
    """The engine erased it too: forget the pseudonym and write ``erasure.confirmed``.

    Args:
        database: The open station database.
        erasure_id: The erasure.
        now: When the engine confirmed.
        engine_detail: What the engine reports it erased (counts, model versions); no
            pseudonym.

    Raises:
        NotFoundError: No such erasure.
    """
    with database.transaction() as session:
        row = session.get(Erasure, erasure_id)
        if row is None:
            raise NotFoundError(f"erasure {erasure_id} does not exist")
        if row.state == ErasureState.CONFIRMED.value:
            return
        row.state, row.confirmed_at, row.pseudonym = ErasureState.CONFIRMED.value, now, None
        record_audit(session, at=now, station_id=database.settings.station_id, actor_id=None,
                     action=ERASURE_CONFIRMED, entity_type="erasure", entity_id=erasure_id,
                     detail=dict(engine_detail))


# -- the deletes ---------------------------------------------------------------------------

_CaptureRow = tuple[int, str, str, int]
"""(id, uid, image_ref, visit_id) of a capture to erase."""


def _captures(session: Session, where: ColumnElement[bool]) -> list[_CaptureRow]:
    rows = session.execute(select(Capture.id, Capture.uid, Capture.image_ref, Capture.visit_id)
                           .where(where).order_by(Capture.id))
    return [(row.id, row.uid, row.image_ref, row.visit_id) for row in rows]


def _chunks(ids: Sequence[int]) -> Iterator[Sequence[int]]:
    for start in range(0, len(ids), _CHUNK):
        yield ids[start:start + _CHUNK]


def _delete(session: Session, model: type[Base], where: ColumnElement[bool]) -> int:
    result = session.execute(delete(model).where(where)
                             .execution_options(synchronize_session=False))
    return int(cast("CursorResult[Any]", result).rowcount or 0)


def _delete_captures(session: Session,
                     captures: Sequence[_CaptureRow]) -> tuple[dict[str, int], set[str]]:
    """Delete the captures and every row that names them; returns counts and image refs."""
    counts = dict.fromkeys(ErasureCounts().as_dict(), 0)
    ids = [capture_id for capture_id, _, _, _ in captures]
    if ids:
        with deletes_allowed(session, "labels"):
            for chunk in _chunks(ids):
                counts["engine_reviews"] += _delete(session, EngineReview,
                                                    EngineReview.capture_id.in_(chunk))
                _delete(session, ReviewDetail, ReviewDetail.label_id.in_(  # part of the labels
                    select(Label.id).where(Label.capture_id.in_(chunk))))
                counts["labels"] += _delete(session, Label, Label.capture_id.in_(chunk))
        for chunk in _chunks(ids):
            session.execute(update(Lesion).where(Lesion.overview_capture_id.in_(chunk))
                            .values(overview_capture_id=None, overview_x=None, overview_y=None)
                            .execution_options(synchronize_session=False))
            counts["predictions"] += _delete(session, Prediction, Prediction.capture_id.in_(chunk))
            counts["outbox"] += _delete(session, OutboxEntry, OutboxEntry.capture_id.in_(chunk))
            counts["captures"] += _delete(session, Capture, Capture.id.in_(chunk))
    refs = {ref for _, _, ref, _ in captures}
    still_used = set(session.scalars(select(Capture.image_ref).where(
        Capture.image_ref.in_(refs)))) if refs else set()
    refs -= still_used
    counts["image_files"] = len(refs)
    return counts, refs


def _queue(session: Session, database: Database, now: datetime, reason: ErasureReason,
           pseudonym: str | None, captures: Sequence[_CaptureRow], actor_id: int | None,
           counts: dict[str, int], action: str,
           extra: dict[str, object] | None = None) -> ErasureReport:
    """Queue the erasure for the engine and write its one audit row (counts, no names)."""
    erasure = Erasure(requested_at=now, reason=reason.value, pseudonym=pseudonym,
                      capture_uids=[uid for _, uid, _, _ in captures],
                      state=ErasureState.PENDING.value, confirmed_at=None)
    session.add(erasure)
    session.flush()
    detail: dict[str, object] = {"reason": reason.value, **counts, **(extra or {})}
    record_audit(session, at=now, station_id=database.settings.station_id, actor_id=actor_id,
                 action=action, entity_type="erasure", entity_id=erasure.id, detail=detail)
    return ErasureReport(erasure.id, reason, ErasureCounts(**counts), 0)


def _finish(database: Database, report: ErasureReport, refs: set[str]) -> ErasureReport:
    """After the commit: delete the image files no capture names (checked again now)."""
    removed = 0
    for ref in sorted(refs):
        with database.transaction() as session:
            if session.scalar(select(func.count()).select_from(Capture)
                              .where(Capture.image_ref == ref)):
                continue  # the same image was saved again meanwhile
        path = database.images.path_for(ref)
        if path.is_file():
            path.unlink()
            removed += 1
    return ErasureReport(report.erasure_id, report.reason, report.counts, removed)


def describe_patient(database: Database, patient_id: int) -> tuple[str, int, int]:
    """What erasing a patient would remove: (pseudonym, visits, captures); nothing is audited.

    Raises:
        NotFoundError: No such patient.
    """
    with database.transaction() as session:
        pseudonym = get_or_raise(session, Patient, patient_id).pseudonym
        visits = select(Visit.id).where(Visit.patient_id == patient_id)
        count_visits = session.scalar(select(func.count()).select_from(visits.subquery())) or 0
        captures = session.scalar(select(func.count()).select_from(Capture)
                                  .where(Capture.visit_id.in_(visits))) or 0
    return pseudonym, count_visits, captures
