"""Erasing a patient's data from the engine, and the engine's retention period.

:func:`erase` deletes, in ONE transaction, a patient's captures (with their predictions and
reviews: ``reviews`` is append-only, its DELETE trigger is lifted for this transaction only),
exam sessions and patient row, or only the listed captures (retention), and records:

* an :class:`~skinstation.engine.patients.models.Erasure` with the counts, and one audit row
  about it (``patient.erased`` / ``captures.erased``) that names no patient;
* the erased captures' uids (:class:`ErasedCapture`): ingest refuses them from then on;
* ``erased_at`` on the :class:`~skinstation.engine.retraining.models.TrainingCase` rows of
  the erased captures: the model versions trained on them stay known as having seen them, and
  the audit row lists them.

After the commit the image files no capture names any more are deleted, and if a training job
had used an erased case, the shared training caches (prepared images, features, checkpoints:
derived from the case) are emptied. Retraining never sees an erased case: its rows are gone.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator, Sequence
from datetime import datetime
from typing import Any, cast

from sqlalchemy import ColumnElement, CursorResult, delete, func, select, update
from sqlalchemy.orm import Session

from skinstation.core.sqlbase import deletes_allowed
from skinstation.core.timeutil import as_utc, utc_now, years_before
from skinstation.engine.audit import service as audit
from skinstation.engine.base import Base
from skinstation.engine.database import EngineDatabase
from skinstation.engine.errors import NotFoundError
from skinstation.engine.ingest.models import Capture, CapturePrediction, ExamSession, Patient
from skinstation.engine.models.models import ModelVersion
from skinstation.engine.patients.models import ErasedCapture, Erasure
from skinstation.engine.retraining.models import TrainingCase
from skinstation.engine.review.models import Review
from skinstation.engine.stations.service import StationPrincipal
from skinstation.protocol.erasures import ErasureNotice, ErasureReason, ErasureReceipt

PATIENT_ERASED = "patient.erased"
CAPTURES_ERASED = "captures.erased"
RETENTION_ACTOR = "engine:retention"
_CHUNK = 500
_COUNTED = ("patients", "sessions", "captures", "predictions", "reviews", "image_files")

_Row = tuple[int, str, str, int | None]
"""(id, uid, image_ref, session_id) of a capture to erase."""


def erase(db: EngineDatabase, *, actor: str, reason: ErasureReason,
          patient_id: int | None = None, station_id: int | None = None,
          pseudonym: str | None = None, capture_uids: Sequence[str] = (),
          station_erasure_id: int | None = None) -> ErasureReceipt:
    """Erase a patient (by id, or a station's pseudonym) and/or a station's listed captures.

    Args:
        db: The engine database.
        actor: Who erases (``account:<name>``, ``station:<id>``, ``engine:retention``).
        reason: Why.
        patient_id: The engine patient to erase (an administrator's erasure).
        station_id: Only this station's patient and captures (a station's notice).
        pseudonym: The station's patient to erase (with ``station_id``).
        capture_uids: Captures to erase (only ``station_id``'s when it is given).
        station_erasure_id: The station's erasure id (echoed in the receipt).

    Returns:
        What was erased (all zero when it was already gone: notices are idempotent).

    Raises:
        NotFoundError: ``patient_id`` names no patient.
    """
    now = utc_now()
    with db.transaction() as session:
        patient = _patient(session, patient_id, station_id, pseudonym)
        if patient is None and patient_id is not None:
            raise NotFoundError(f"patient {patient_id} does not exist")
        rows = _captures(session, patient, station_id, capture_uids)
        if not rows and patient is None and station_erasure_id is not None:
            done = _recorded(session, station_id, station_erasure_id)
            if done is not None:
                return done
        counts, refs = _delete_captures(session, rows)
        touched = {session_id for _, _, _, session_id in rows if session_id is not None}
        counts["sessions"] = _delete_sessions(session, patient, touched)
        if patient is not None:
            counts["patients"] = _delete(session, Patient, Patient.id == patient.id)
        jobs, versions = _seen_by_models(session, [uid for _, uid, _, _ in rows], now)
        erasure = Erasure(station_id=station_id if patient is None else patient.station_id,
                          station_erasure_id=station_erasure_id, reason=reason.value,
                          actor=actor, erased_at=now,
                          counts={**counts, "model_versions": versions, "training_jobs": jobs})
        session.add(erasure)
        session.flush()
        session.add_all(ErasedCapture(uid=uid, erasure_id=erasure.id)
                        for uid in _tombstones(session, rows, station_id, capture_uids))
        action = PATIENT_ERASED if patient is not None else CAPTURES_ERASED
        audit.record(session, actor, action, "erasure", erasure.id,
                     {"reason": reason.value, **erasure.counts})
        receipt = _receipt(erasure)
    _delete_files(db, refs)
    if jobs:
        purge_training_caches(db)
    return receipt


def erase_for_station(db: EngineDatabase, station: StationPrincipal,
                      notice: ErasureNotice) -> ErasureReceipt:
    """Erase what a station says it erased: only that station's own patient and captures."""
    return erase(db, actor=station.actor, reason=notice.reason, station_id=station.station_id,
                 pseudonym=notice.pseudonym, capture_uids=notice.capture_uids,
                 station_erasure_id=notice.erasure_id)


def apply_retention(db: EngineDatabase, now: datetime, *,
                    years: int | None = None) -> ErasureReceipt | None:
    """Erase every capture (station or provider) taken more than ``years`` years before ``now``.

    Args:
        db: The engine database.
        now: The current time (aware).
        years: The retention period (default ``engine.retention_years``; 0: keep forever).

    Returns:
        The receipt, or None when nothing was old enough (nothing is written then).
    """
    years = db.settings.engine.retention_years if years is None else years
    if years <= 0:
        return None
    cutoff = years_before(as_utc(now), years)
    with db.transaction() as session:
        uids = list(session.scalars(select(Capture.uid).where(Capture.capture_time < cutoff)
                                    .order_by(Capture.id)))
    if not uids:
        return None
    return erase(db, actor=RETENTION_ACTOR, reason=ErasureReason.RETENTION, capture_uids=uids)


def purge_training_caches(db: EngineDatabase) -> int:
    """Empty the training caches (shared and per job), derived from the cases trained on.

    Returns:
        How many files were deleted.
    """
    folders = [db.paths.home / "cache", *db.paths.jobs.glob("job-*/cache")]
    removed = 0
    for folder in folders:
        if folder.is_dir():
            removed += sum(1 for path in folder.rglob("*") if path.is_file())
            shutil.rmtree(folder, ignore_errors=True)
    return removed


# -- the steps -------------------------------------------------------------------------------

def _chunks(items: Sequence[Any]) -> Iterator[Sequence[Any]]:
    for start in range(0, len(items), _CHUNK):
        yield items[start:start + _CHUNK]


def _delete(session: Session, model: type[Base], where: ColumnElement[bool]) -> int:
    result = session.execute(delete(model).where(where)
                             .execution_options(synchronize_session=False))
    return int(cast("CursorResult[Any]", result).rowcount or 0)


def _patient(session: Session, patient_id: int | None, station_id: int | None,
             pseudonym: str | None) -> Patient | None:
    if patient_id is not None:
        return session.get(Patient, patient_id)
    if pseudonym is None or station_id is None:
        return None
    return session.scalar(select(Patient).where(Patient.station_id == station_id,
                                                Patient.pseudonym == pseudonym))


def _captures(session: Session, patient: Patient | None, station_id: int | None,
              uids: Sequence[str]) -> list[_Row]:
    """The captures to erase, locked (a concurrent erasure of the same rows waits)."""
    wheres: list[ColumnElement[bool]] = []
    if patient is not None:
        wheres.append(Capture.session_id.in_(
            select(ExamSession.id).where(ExamSession.patient_id == patient.id)))
    for chunk in _chunks(sorted(set(uids))):
        listed = Capture.uid.in_(chunk)
        wheres.append(listed if station_id is None else listed & (Capture.station_id == station_id))
    found: dict[int, _Row] = {}
    for where in wheres:
        for row in session.execute(select(Capture.id, Capture.uid, Capture.image_ref,
                                          Capture.session_id).where(where).with_for_update()):
            found[row.id] = (row.id, row.uid, row.image_ref, row.session_id)
    return [found[key] for key in sorted(found)]


def _delete_captures(session: Session, rows: Sequence[_Row]) -> tuple[dict[str, int], set[str]]:
    counts = dict.fromkeys(_COUNTED, 0)
    ids = [capture_id for capture_id, _, _, _ in rows]
    if ids:
        with deletes_allowed(session, "reviews"):
            for chunk in _chunks(ids):
                counts["reviews"] += _delete(session, Review, Review.capture_id.in_(chunk))
    for chunk in _chunks(ids):
        counts["predictions"] += _delete(session, CapturePrediction,
                                         CapturePrediction.capture_id.in_(chunk))
        counts["captures"] += _delete(session, Capture, Capture.id.in_(chunk))
    refs = {ref for _, _, ref, _ in rows}
    if refs:
        refs -= set(session.scalars(select(Capture.image_ref).where(Capture.image_ref.in_(refs))))
    counts["image_files"] = len(refs)
    return counts, refs


def _delete_sessions(session: Session, patient: Patient | None, touched: set[int]) -> int:
    """The patient's sessions, and the touched sessions left without captures."""
    empty = ~select(Capture.id).where(Capture.session_id == ExamSession.id).exists()
    wheres: list[ColumnElement[bool]] = [ExamSession.id.in_(chunk) & empty
                                         for chunk in _chunks(sorted(touched))]
    if patient is not None:
        wheres.append(ExamSession.patient_id == patient.id)
    return sum(_delete(session, ExamSession, where) for where in wheres)


def _tombstones(session: Session, rows: Sequence[_Row], station_id: int | None,
                listed: Sequence[str]) -> list[str]:
    """The uids to refuse from now on: the erased ones and, for a station, every uid it listed.

    A listed uid the engine does not hold yet (an upload still on its way) is refused when it
    arrives; one another station holds is left alone.
    """
    uids = {uid for _, uid, _, _ in rows}
    extra = set(listed) - uids if station_id is not None else set()
    for chunk in _chunks(sorted(extra)):
        extra -= set(session.scalars(select(Capture.uid).where(Capture.uid.in_(chunk))))
        extra -= set(session.scalars(select(ErasedCapture.uid)
                                     .where(ErasedCapture.uid.in_(chunk))))
    return sorted(uids | extra)


def _seen_by_models(session: Session, uids: Sequence[str],
                    now: datetime) -> tuple[list[int], list[str]]:
    """Mark the erased cases' training rows; return the jobs and model versions that used them."""
    jobs: set[int] = set()
    for chunk in _chunks(uids):
        jobs.update(session.scalars(select(TrainingCase.job_id)
                                    .where(TrainingCase.capture_uid.in_(chunk))))
        session.execute(update(TrainingCase).where(
            TrainingCase.capture_uid.in_(chunk), TrainingCase.erased_at.is_(None))
            .values(erased_at=now).execution_options(synchronize_session=False))
    versions = list(session.scalars(select(ModelVersion.version).where(
        ModelVersion.job_id.in_(sorted(jobs))).order_by(ModelVersion.id))) if jobs else []
    return sorted(jobs), versions


def _recorded(session: Session, station_id: int | None,
              station_erasure_id: int) -> ErasureReceipt | None:
    """The receipt of a station's erasure already done (a notice sent again)."""
    erasure = session.scalar(select(Erasure).where(
        Erasure.station_id == station_id, Erasure.station_erasure_id == station_erasure_id)
        .order_by(Erasure.id).limit(1))
    return None if erasure is None else _receipt(erasure)


def _receipt(erasure: Erasure) -> ErasureReceipt:
    counts = erasure.counts
    return ErasureReceipt(erasure_id=erasure.station_erasure_id or 0,
                          engine_erasure_id=erasure.id,
                          **{name: int(counts.get(name, 0)) for name in _COUNTED},
                          model_versions=list(counts.get("model_versions", [])))


def _delete_files(db: EngineDatabase, refs: set[str]) -> None:
    """Delete image files no capture names (checked again: the same image may have come back)."""
    for ref in sorted(refs):
        with db.transaction() as session:
            if session.scalar(select(func.count()).select_from(Capture)
                              .where(Capture.image_ref == ref)):
                continue
        db.images.path_for(ref).unlink(missing_ok=True)
