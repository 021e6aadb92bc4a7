"""Lesions, the patient list and demographics behind permission checks (free of Qt).

The patient and capture screens call these: the patient list (search, last visit, open
referrals, lesions), demographics, the body map's lesions and "which lesion?" candidates at a
site, assigning a capture to a lesion and the lesion's timeline. Saving a new capture of a
lesion goes through :func:`skinstation.services.capture.save` (``lesion_id=``).

Typical use::

    lesions = LesionService(station)
    candidates = lesions.lesions_of(session, patient.id, body_site="back")
    lesion = candidates[0] if candidates else lesions.create_lesion(
        session, patient.id, "back", "back", "left", 0.42, 0.31)
    save(station, session, visit.id, analysis, ..., lesion_id=lesion.id)
    history = lesions.lesion_timeline(session, lesion.id)
"""

from __future__ import annotations

from skinstation.auth import Session, can_capture, can_view_history
from skinstation.services.station import StationService
from skinstation.storage.lesions import Demographics, LesionInfo, LesionStore, PatientRow
from skinstation.storage.queries import CaptureSummary


class LesionService:
    """Lesion and patient-list operations of one station.

    Args:
        station: The station service (its database, clock and operator access).
    """

    def __init__(self, station: StationService) -> None:
        self.station = station
        self.auth = station.auth
        self.store = LesionStore(station.database, clock=station.clock,
                                 store_patient_names=station.settings.store_patient_names)

    def create_lesion(self, session: Session, patient_id: int, body_site: str, view: str,
                      side: str, x: float, y: float, label: str | None = None,
                      note: str | None = None) -> LesionInfo:
        """A new lesion of a patient on the body map ("new lesion").

        Args:
            session: The operator's session (may capture).
            patient_id: Whose lesion.
            body_site: Body-site code (the same codes captures use).
            view: ``front`` or ``back``.
            side: ``left``, ``right`` or ``midline``.
            x: Point on the body map, 0..1 from the left.
            y: Point on the body map, 0..1 from the top.
            label: Optional short name (80 characters).
            note: Optional note (2000 characters).

        Raises:
            ValueError: A bad site, view, side, point, label or note (nothing stored).
            NotFoundError: No such patient.
            PermissionDeniedError: Unless the session may capture.
        """
        self.auth.require(session, can_capture)
        return self.store.create_lesion(patient_id, body_site=body_site, view=view, side=side,
                                        x=x, y=y, label=label, note=note,
                                        actor_id=session.operator_id)

    def lesions_of(self, session: Session, patient_id: int,
                   body_site: str | None = None) -> list[LesionInfo]:
        """The patient's lesions, oldest first; with ``body_site``, the "which lesion?" list."""
        self.auth.require(session, can_view_history)
        return self.store.lesions_of(patient_id, body_site=body_site,
                                     actor_id=session.operator_id)

    def lesion(self, session: Session, lesion_id: int) -> LesionInfo:
        """One lesion."""
        self.auth.require(session, can_view_history)
        return self.store.get_lesion(lesion_id, actor_id=session.operator_id)

    def assign_capture(self, session: Session, capture_id: int, lesion_id: int | None) -> None:
        """Make a stored capture one of a lesion's (None: of no lesion).

        Raises:
            ValueError: Another patient's lesion, or a capture already sent to the engine.
            NotFoundError: No such capture or lesion.
            PermissionDeniedError: Unless the session may capture.
        """
        self.auth.require(session, can_capture)
        self.store.assign_capture(capture_id, lesion_id, actor_id=session.operator_id)

    def set_overview(self, session: Session, lesion_id: int, capture_id: int | None,
                     x: float | None = None, y: float | None = None) -> LesionInfo:
        """Mark the lesion at ``x``/``y`` (0..1) on an overview (macro) capture; None clears.

        Raises:
            LesionError: Another patient's capture, or no / a bad point (a ``ValueError``
                whose text the window shows in its language).
            NotFoundError: No such lesion or capture.
            PermissionDeniedError: Unless the session may capture.
        """
        self.auth.require(session, can_capture)
        return self.store.set_overview(lesion_id, capture_id, x=x, y=y,
                                       actor_id=session.operator_id)

    def lesion_timeline(self, session: Session, lesion_id: int) -> list[CaptureSummary]:
        """The lesion's captures, oldest first, with decision, referral, review and labels."""
        self.auth.require(session, can_view_history)
        return self.store.timeline(lesion_id, actor_id=session.operator_id)

    def patient_list(self, session: Session, search: str = "") -> list[PatientRow]:
        """Patients matching ``search`` (part of pseudonym or stored name, any case).

        Latest visit first, with open referrals, lesions and demographics.
        """
        self.auth.require(session, can_view_history)
        return self.store.patient_list(search=search, actor_id=session.operator_id)

    def demographics(self, session: Session, patient_id: int) -> Demographics:
        """A patient's demographics as stored."""
        self.auth.require(session, can_view_history)
        return self.store.demographics(patient_id)

    def set_demographics(self, session: Session, patient_id: int, sex: str | None,
                         birth_year: int | None, fitzpatrick: int | None) -> Demographics:
        """Record a patient's sex, birth year and Fitzpatrick type (None: not recorded).

        Raises:
            ValueError: Sex not female/male/other/unknown, a birth year outside 1900..this
                year, a Fitzpatrick type outside 1..6 (nothing stored).
            NotFoundError: No such patient.
            PermissionDeniedError: Unless the session may capture.
        """
        self.auth.require(session, can_capture)
        return self.store.set_demographics(patient_id, sex=sex, birth_year=birth_year,
                                           fitzpatrick=fitzpatrick,
                                           actor_id=session.operator_id)
