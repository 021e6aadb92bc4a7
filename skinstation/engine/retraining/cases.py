"""The synced cases a training job trains on: kept only while they exist, and recorded.

A job lists its reviewed cases when it starts (:func:`~skinstation.engine.retraining.service.
reviewed_cases`); a case may be erased before training reads it. :func:`claim_cases` keeps
the listed cases that still exist and records them as the job's
(:class:`~skinstation.engine.retraining.models.TrainingCase`) in one transaction, holding a
share lock on their capture rows (PostgreSQL): an erasure either came first (the case is left
out) or finds the record (the job's model is known to have seen the case).
:func:`cases_fingerprint` fingerprints the list (sha256 over the sorted capture uids).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence

from sqlalchemy import select

from skinstation.engine.database import EngineDatabase
from skinstation.engine.ingest.models import Capture
from skinstation.engine.retraining.models import TrainingCase
from skinstation.training.sources import Record

CASE_PREFIX = "engine-"
_CHUNK = 500
MIN_PATIENTS_TO_HOLD_OUT = 10
"""Fewer patients than this with cases: every case trains (a share of them tells nothing)."""


def hold_out_patients(records: Sequence[Record], share: float
                      ) -> tuple[list[Record], list[Record]]:
    """Split reviewed cases by patient into training cases and validation cases.

    ``round(share × patients)`` whole patients go to validation, chosen by the sha256 of
    their patient key (a job tomorrow holds out the same patients, plus some of the new
    ones), so no patient is both trained on and validated on. With fewer than
    :data:`MIN_PATIENTS_TO_HOLD_OUT` patients, or ``share`` 0, every case trains.

    Returns:
        ``(train, validation)``, each in the records' order.

    Raises:
        ValueError: If ``share`` is not in [0, 1).
    """
    if not 0 <= share < 1:
        raise ValueError(f"case validation share must be in [0, 1), got {share}")
    patients = sorted({r.split_key for r in records},
                      key=lambda key: hashlib.sha256(key.encode("utf-8")).hexdigest())
    if len(patients) < MIN_PATIENTS_TO_HOLD_OUT or share == 0:
        return list(records), []
    held = set(patients[: round(share * len(patients))])
    return ([r for r in records if r.split_key not in held],
            [r for r in records if r.split_key in held])


def case_uid(record: Record) -> str:
    """The capture uid of a synced case (its record's image id is ``engine-<uid>``)."""
    return record.image_id.removeprefix(CASE_PREFIX)


def cases_fingerprint(records: Sequence[Record]) -> str:
    """sha256 over the sorted capture uids of the cases (of no cases: of the empty text)."""
    uids = sorted(case_uid(record) for record in records)
    return hashlib.sha256("\n".join(uids).encode()).hexdigest()


def claim_cases(db: EngineDatabase, job_id: int, records: Sequence[Record],
                log: Callable[[str], None]) -> list[Record]:
    """The listed cases whose capture still exists, recorded as trained on by the job.

    Args:
        db: The engine database.
        job_id: The training job.
        records: The cases it listed.
        log: Progress messages (the number of cases erased meanwhile).

    Returns:
        The cases to train on, in the given order.
    """
    uids = [case_uid(record) for record in records]
    present: set[str] = set()
    with db.transaction() as session:
        for start in range(0, len(uids), _CHUNK):
            chunk = uids[start:start + _CHUNK]
            present.update(session.scalars(select(Capture.uid).where(Capture.uid.in_(chunk))
                                           .with_for_update(read=True)))
        known = set(session.scalars(select(TrainingCase.capture_uid)
                                    .where(TrainingCase.job_id == job_id)))
        session.add_all(TrainingCase(job_id=job_id, capture_uid=uid, erased_at=None)
                        for uid in sorted(present - known))
    kept = [record for record in records if case_uid(record) in present]
    if len(kept) < len(records):
        log(f"{len(records) - len(kept)} listed case(s) were erased before training; skipped")
    return kept
