"""Lesions as identities, the patient list and demographics (migration 0010).

A :class:`~skinstation.storage.models.Lesion` is one spot on a patient's skin followed over
visits; its captures name it (``captures.lesion_id``). :class:`LesionStore` creates lesions,
finds the candidates at a body site ("which lesion?"), assigns captures, lists a lesion's
captures in date order, lists patients with their counts, and keeps their demographics.
Every change and every read of patient data writes its audit row in the same transaction;
demographics audit rows name the fields changed, never their values (the log outlives an
erasure).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session as DbSession

from skinstation.core.i18n import KeyedError
from skinstation.core.triage import SKIN_CANCER
from skinstation.storage.audit import AuditAction
from skinstation.storage.audited_store import AuditedStore
from skinstation.storage.models import (
    BodySide,
    BodyView,
    Capture,
    Lesion,
    OutboxEntry,
    OutboxState,
    Patient,
    Prediction,
    Sex,
    Visit,
)
from skinstation.storage.queries import CaptureSummary, _summaries, _summary_select
from skinstation.storage.validation import active_operator, get_or_raise, require_text

FITZPATRICK_TYPES = (1, 2, 3, 4, 5, 6)
"""Fitzpatrick skin types I-VI, stored as 1..6."""

EARLIEST_BIRTH_YEAR = 1900


class LesionError(KeyedError, ValueError):
    """A refused lesion point or overview, said in the window's language.

    Raised with a text key (``error.lesion.*``; see :class:`~skinstation.core.i18n.KeyedError`).
    """


@dataclass(frozen=True)
class LesionInfo:
    """A lesion with its placement and how often it was captured.

    Attributes:
        id: Local id (give it to ``save_capture(lesion_id=...)``).
        uid: Identity at the engine.
        patient_id: Whose lesion.
        body_site: Body-site code (the capture site codes).
        view: ``front`` or ``back`` of the body map.
        side: ``left``, ``right`` or ``midline``.
        x: Point on the body map, 0 (left edge) .. 1.
        y: Point on the body map, 0 (top) .. 1.
        label: Optional short name ("mole left shoulder").
        note: Optional note.
        created_at: When it was created.
        created_by_id: Who created it.
        overview_capture_id: Overview (macro) capture it is marked on, or None.
        overview_point: ``(x, y)`` of the mark on that capture (0..1), or None.
        captures: Number of captures of it.
        last_capture_at: When it was last captured, or None.
    """

    id: int
    uid: str
    patient_id: int
    body_site: str
    view: str
    side: str
    x: float
    y: float
    label: str | None
    note: str | None
    created_at: datetime
    created_by_id: int
    overview_capture_id: int | None
    overview_point: tuple[float, float] | None
    captures: int
    last_capture_at: datetime | None


@dataclass(frozen=True)
class PatientRow:
    """One line of the patient list.

    Attributes:
        patient_id: Local id.
        pseudonym: The pseudonymous id.
        name: The name, only where the station stores names (else None).
        last_visit_at: When the latest visit was opened, or None.
        visits: Number of visits.
        open_referrals: Captures whose latest prediction is suspected skin cancer or flagged
            for referral and that no dermatologist has reviewed yet.
        lesions: Number of lesions.
        sex: ``female`` / ``male`` / ``other`` / ``unknown``, or None.
        birth_year: Year of birth, or None.
        fitzpatrick: Fitzpatrick skin type 1..6, or None.
    """

    patient_id: int
    pseudonym: str
    name: str | None
    last_visit_at: datetime | None
    visits: int
    open_referrals: int
    lesions: int
    sex: str | None
    birth_year: int | None
    fitzpatrick: int | None


@dataclass(frozen=True)
class Demographics:
    """A patient's demographics as stored (each None when not recorded)."""

    sex: str | None
    birth_year: int | None
    fitzpatrick: int | None


def check_demographics(sex: str | None, birth_year: int | None, fitzpatrick: int | None, *,
                       current_year: int) -> Demographics:
    """Validate demographics (None leaves a field unrecorded).

    Raises:
        ValueError: An unknown sex, a birth year outside 1900..``current_year`` or a
            Fitzpatrick type outside 1..6 (bools are refused as numbers).
    """
    if sex is not None and sex not in {s.value for s in Sex}:
        raise ValueError(f"sex must be one of {', '.join(s.value for s in Sex)}; got {sex!r}")
    if birth_year is not None and (
            isinstance(birth_year, bool) or not isinstance(birth_year, int)
            or not EARLIEST_BIRTH_YEAR <= birth_year <= current_year):
        raise ValueError(f"birth year must be between {EARLIEST_BIRTH_YEAR} and {current_year}; "
                         f"got {birth_year!r}")
    if fitzpatrick is not None and (
            isinstance(fitzpatrick, bool) or fitzpatrick not in FITZPATRICK_TYPES):
        raise ValueError(f"Fitzpatrick skin type must be 1 to 6; got {fitzpatrick!r}")
    return Demographics(None if sex is None else str(sex), birth_year, fitzpatrick)


def _point(value: float, field: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0.0 <= value <= 1.0:
        raise LesionError("error.lesion.point", field=field, value=repr(value))
    return float(value)


def _choice(value: str, field: str, allowed: type[BodyView] | type[BodySide]) -> str:
    values = [v.value for v in allowed]
    if value not in values:
        raise ValueError(f"{field} must be one of {', '.join(values)}; got {value!r}")
    return str(value)


def _optional_text(value: str | None, field: str, limit: int, multiline: bool) -> str | None:
    text = (value or "").strip()
    return require_text(text, field, limit, multiline=multiline) if text else None


class LesionStore(AuditedStore):
    """Lesions, their captures, the patient list and demographics of one station."""

    def create_lesion(self, patient_id: int, *, body_site: str, view: str, side: str, x: float,
                      y: float, actor_id: int, label: str | None = None,
                      note: str | None = None) -> LesionInfo:
        """Create a lesion of a patient at a place on the body map.

        Raises:
            ValueError: A bad site, view, side, point, label (80) or note (2000).
            NotFoundError: No such patient.
            InactiveOperatorError: The operator is disabled.
        """
        lesion = Lesion(
            patient_id=patient_id, body_site=require_text(body_site, "body_site", 64),
            view=_choice(view, "view", BodyView), side=_choice(side, "side", BodySide),
            x=_point(x, "x"), y=_point(y, "y"),
            label=_optional_text(label, "label", 80, multiline=False),
            note=_optional_text(note, "note", 2000, multiline=True),
            created_at=self.clock(), created_by_id=actor_id)
        with self.database.transaction() as session:
            active_operator(session, actor_id)
            get_or_raise(session, Patient, patient_id)
            session.add(lesion)
            session.flush()
            self._audit(session, actor_id, AuditAction.LESION_CREATED, "lesion", lesion.id,
                        {"patient_id": patient_id, "body_site": lesion.body_site})
            return self._infos(session, [lesion])[0]

    def lesions_of(self, patient_id: int, *, actor_id: int,
                   body_site: str | None = None) -> list[LesionInfo]:
        """A patient's lesions (at one site if given), oldest first (audited)."""
        with self.database.transaction() as session:
            get_or_raise(session, Patient, patient_id)
            stmt = select(Lesion).where(Lesion.patient_id == patient_id)
            if body_site is not None:
                stmt = stmt.where(Lesion.body_site == body_site)
            lesions = list(session.scalars(stmt.order_by(Lesion.created_at, Lesion.id)))
            self._audit(session, actor_id, AuditAction.LESIONS_VIEWED, "patient", patient_id,
                        {"body_site": body_site, "rows": len(lesions)})
            return self._infos(session, lesions)

    def get_lesion(self, lesion_id: int, *, actor_id: int) -> LesionInfo:
        """One lesion (audited as a lesions read of its patient)."""
        with self.database.transaction() as session:
            lesion = get_or_raise(session, Lesion, lesion_id)
            self._audit(session, actor_id, AuditAction.LESIONS_VIEWED, "lesion", lesion_id)
            return self._infos(session, [lesion])[0]

    def assign_capture(self, capture_id: int, lesion_id: int | None, *, actor_id: int) -> None:
        """Make a capture one of a lesion's (None: of no lesion).

        Raises:
            ValueError: The lesion is another patient's, or the capture was already sent to
                the engine (which would keep the old lesion).
            NotFoundError: No such capture or lesion.
        """
        with self.database.transaction() as session:
            active_operator(session, actor_id)
            capture = get_or_raise(session, Capture, capture_id)
            patient_id = get_or_raise(session, Visit, capture.visit_id).patient_id
            if lesion_id is not None and \
                    get_or_raise(session, Lesion, lesion_id).patient_id != patient_id:
                raise ValueError(f"lesion {lesion_id} is not a lesion of this capture's patient")
            state = session.scalar(select(OutboxEntry.state).where(
                OutboxEntry.capture_id == capture_id))
            if state in (OutboxState.SENT.value, OutboxState.CONFIRMED.value):
                raise ValueError(f"capture {capture_id} was already sent to the engine; its "
                                 "lesion can no longer change")
            capture.lesion_id = lesion_id
            self._audit(session, actor_id, AuditAction.LESION_CAPTURE_ASSIGNED, "capture",
                        capture_id, {"lesion_id": lesion_id})

    def set_overview(self, lesion_id: int, capture_id: int | None, *, actor_id: int,
                     x: float | None = None, y: float | None = None) -> LesionInfo:
        """Mark the lesion at ``x``/``y`` (0..1) on an overview capture of its patient.

        ``capture_id`` None removes the overview.

        Raises:
            LesionError: The capture is another patient's, or no or a bad point (a
                ``ValueError`` with a text key).
            NotFoundError: No such lesion or capture.
        """
        with self.database.transaction() as session:
            active_operator(session, actor_id)
            lesion = get_or_raise(session, Lesion, lesion_id)
            point: tuple[float | None, float | None] = (None, None)
            if capture_id is not None:
                capture = get_or_raise(session, Capture, capture_id)
                if get_or_raise(session, Visit, capture.visit_id).patient_id != lesion.patient_id:
                    raise LesionError("error.lesion.overview_patient", id=capture_id)
                if x is None or y is None:
                    raise LesionError("error.lesion.overview_point")
                point = (_point(x, "x"), _point(y, "y"))
            lesion.overview_capture_id = capture_id
            lesion.overview_x, lesion.overview_y = point
            session.flush()
            self._audit(session, actor_id, AuditAction.LESION_OVERVIEW_SET, "lesion", lesion_id,
                        {"capture_id": capture_id})
            return self._infos(session, [lesion])[0]

    def timeline(self, lesion_id: int, *, actor_id: int) -> list[CaptureSummary]:
        """The lesion's captures, oldest first, with decision, referral, review and labels."""
        with self.database.transaction() as session:
            get_or_raise(session, Lesion, lesion_id)
            stmt, _ = _summary_select()
            stmt = stmt.where(Capture.lesion_id == lesion_id).order_by(
                Capture.capture_time, Capture.id)
            rows = _summaries(session, stmt)
            self._audit(session, actor_id, AuditAction.LESION_TIMELINE_VIEWED, "lesion",
                        lesion_id, {"rows": len(rows)})
            return rows

    def patient_list(self, *, actor_id: int, search: str = "") -> list[PatientRow]:
        """Patients whose pseudonym (or stored name) contains ``search`` (any case).

        Latest visit first; patients without a visit last, by pseudonym. Pseudonyms are
        encrypted, so the search runs on the decrypted rows (audited with the match count).
        """
        needle = search.strip().casefold()
        with self.database.transaction() as session:
            visits = dict(_grouped(session, Visit.patient_id, func.count(Visit.id)))
            last = dict(_grouped(session, Visit.patient_id, func.max(Visit.opened_at)))
            lesions = dict(_grouped(session, Lesion.patient_id, func.count(Lesion.id)))
            referrals = _open_referrals(session)
            rows = [
                PatientRow(p.id, p.pseudonym, p.name, last.get(p.id), visits.get(p.id, 0),
                           referrals.get(p.id, 0), lesions.get(p.id, 0), p.sex, p.birth_year,
                           p.fitzpatrick)
                for p in session.scalars(select(Patient))
                if not needle or needle in p.pseudonym.casefold()
                or (p.name is not None and needle in p.name.casefold())
            ]
            self._audit(session, actor_id, AuditAction.PATIENT_LIST_VIEWED, None, None,
                        {"searched": bool(needle), "rows": len(rows)})
        rows.sort(key=lambda r: r.pseudonym)
        rows.sort(key=lambda r: (r.last_visit_at is None, -(r.last_visit_at.timestamp()
                                                             if r.last_visit_at else 0)))
        return rows

    def set_demographics(self, patient_id: int, *, actor_id: int, sex: str | None,
                         birth_year: int | None, fitzpatrick: int | None) -> Demographics:
        """Record (or clear, with None) a patient's demographics.

        Raises:
            ValueError: See :func:`check_demographics` (nothing is stored).
            NotFoundError: No such patient.
        """
        checked = check_demographics(sex, birth_year, fitzpatrick,
                                     current_year=self.clock().year)
        with self.database.transaction() as session:
            active_operator(session, actor_id)
            patient = get_or_raise(session, Patient, patient_id)
            wanted = {"sex": checked.sex, "birth_year": checked.birth_year,
                      "fitzpatrick": checked.fitzpatrick}
            changed = sorted(k for k, v in wanted.items() if getattr(patient, k) != v)
            for key, value in wanted.items():
                setattr(patient, key, value)
            if changed:
                self._audit(session, actor_id, AuditAction.DEMOGRAPHICS_CHANGED, "patient",
                            patient_id, {"fields": changed})
            return checked

    def demographics(self, patient_id: int) -> Demographics:
        """A patient's demographics as stored."""
        with self.database.transaction() as session:
            patient = get_or_raise(session, Patient, patient_id)
            return Demographics(patient.sex, patient.birth_year, patient.fitzpatrick)

    @staticmethod
    def _infos(session: DbSession, lesions: list[Lesion]) -> list[LesionInfo]:
        ids = [lesion.id for lesion in lesions]
        counts: Mapping[int, tuple[int, datetime | None]] = {
            row[0]: (row[1], row[2]) for row in session.execute(
                select(Capture.lesion_id, func.count(Capture.id), func.max(Capture.capture_time))
                .where(Capture.lesion_id.in_(ids)).group_by(Capture.lesion_id))
        } if ids else {}
        return [LesionInfo(
            id=lesion.id, uid=lesion.uid, patient_id=lesion.patient_id,
            body_site=lesion.body_site, view=lesion.view, side=lesion.side, x=lesion.x,
            y=lesion.y, label=lesion.label, note=lesion.note, created_at=lesion.created_at,
            created_by_id=lesion.created_by_id, overview_capture_id=lesion.overview_capture_id,
            overview_point=(None if lesion.overview_x is None or lesion.overview_y is None
                            else (lesion.overview_x, lesion.overview_y)),
            captures=counts.get(lesion.id, (0, None))[0],
            last_capture_at=counts.get(lesion.id, (0, None))[1],
        ) for lesion in lesions]


def _grouped(session: DbSession, key: Any, value: Any) -> list[Any]:
    return [(row[0], row[1]) for row in session.execute(select(key, value).group_by(key))]


def _open_referrals(session: DbSession) -> dict[int, int]:
    """Patient id → captures flagged skin cancer / referral with no dermatologist review."""
    stmt, review = _summary_select()
    stmt = stmt.where(or_(Prediction.decision == SKIN_CANCER, Prediction.referral.is_(True)),
                      review.id.is_(None))
    counts: dict[int, int] = {}
    for row in session.execute(stmt):
        counts[row.patient_id] = counts.get(row.patient_id, 0) + 1
    return counts
