"""Lesions as identities, the patient list and demographics (issue 20), SQLite and PostgreSQL.

Real station databases and the real services: lesions on the body map, "which lesion?"
candidates at a site, captures saved to a lesion (never to another patient's), a lesion's
timeline, the patient list's counts, demographics and erasure.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import func, inspect, select, text
from sqlalchemy.exc import DBAPIError

from skinstation.auth import PermissionDeniedError, Role, Session
from skinstation.camera import Frame
from skinstation.services.lesions import LesionService
from skinstation.services.station import StationService
from skinstation.settings import Settings
from skinstation.storage import AuditEvent, Capture, StationStore
from skinstation.storage.database import alembic_config, current_revision, head_revision
from skinstation.storage.erasure import apply_retention, erase_patient
from skinstation.storage.models import Base, Lesion, OutboxEntry, Patient
from tests.test_storage_helpers import BACKENDS, FakeClock, add_operator, open_backend

PASSWORD = "correct horse battery"
T0 = datetime(2026, 3, 14, 10, 0, tzinfo=UTC)
CLASSES = {"akiec": 0.1, "bcc": 0.1, "bkl": 0.1, "df": 0.1, "mel": 0.4, "nv": 0.1, "vasc": 0.1}
GROUPS = {"skin_cancer": 0.6, "other_disease": 0.2, "benign": 0.2}


@dataclass
class Clinic:
    station: StationService
    lesions: LesionService
    clock: FakeClock
    nurse: Session
    derm: Session
    admin: Session

    def patient(self, pseudonym: str) -> int:
        return self.station.find_or_create_patient(self.nurse, pseudonym).id

    def visit(self, patient_id: int) -> int:
        return self.station.start_visit(self.nurse, patient_id).id

    def capture(self, visit_id: int, *, at: datetime, lesion_id: int | None = None,
                body_site: str = "back", seed: int = 0) -> int:
        pixels = np.random.default_rng(seed).integers(0, 256, (16, 24, 3), dtype=np.uint8)
        frame = Frame(pixels, at.timestamp(), "cam-1", 1, "camera")
        return self.station.save_capture(self.nurse, visit_id, frame, band="white",
                                         body_site=body_site, access_time=at,
                                         lesion_id=lesion_id).capture.id

    def predict(self, capture_id: int, decision: str, referral: bool) -> None:
        self.station.store.save_prediction(
            capture_id, model_version="tiny", class_probabilities=CLASSES,
            group_probabilities=GROUPS, decision=decision, referral=referral)

    def count(self, model: type) -> int:
        with self.station.database.transaction() as db:
            return int(db.scalar(select(func.count()).select_from(model)) or 0)

    def audit(self, action: str) -> list[tuple[str | None, dict[str, object]]]:
        with self.station.database.transaction() as db:
            rows = db.scalars(select(AuditEvent).where(AuditEvent.action == action)
                              .order_by(AuditEvent.id))
            return [(row.entity_id, dict(row.detail or {})) for row in rows]


@pytest.fixture(params=BACKENDS)
def clinic(request: pytest.FixtureRequest, settings: Settings) -> Iterator[Clinic]:
    with open_backend(settings, request.param) as database:
        clock = FakeClock(T0)
        station = StationService(database.settings, database=database, clock=clock)
        station.create_first_admin("admin", "Admin", PASSWORD)
        admin = station.login("admin", PASSWORD)
        station.create_operator(admin, "nurse", "Nurse", Role.STAFF, PASSWORD)
        station.create_operator(admin, "derm", "Derm", Role.DERMATOLOGIST, PASSWORD)
        yield Clinic(station, LesionService(station), clock, station.login("nurse", PASSWORD),
                     station.login("derm", PASSWORD), admin)


def test_lesions_are_created_on_the_body_map_and_offered_at_their_site(clinic: Clinic) -> None:
    patient = clinic.patient("P-0001")
    shoulder = clinic.lesions.create_lesion(clinic.nurse, patient, "back", "back", "left",
                                            0.25, 0.2, label="  mole left shoulder ")
    clinic.clock.advance(minutes=1)
    lower = clinic.lesions.create_lesion(clinic.nurse, patient, "back", "back", "right", 0.7, 0.6)
    arm = clinic.lesions.create_lesion(clinic.nurse, patient, "upper_arm", "front", "left", 0.1,
                                       0.4, note="itchy")
    assert (shoulder.body_site, shoulder.view, shoulder.side, shoulder.x, shoulder.y) == (
        "back", "back", "left", 0.25, 0.2)
    assert shoulder.label == "mole left shoulder" and shoulder.note is None
    assert (shoulder.captures, shoulder.last_capture_at, shoulder.overview_point) == (0, None, None)
    assert len(shoulder.uid) == 36 and shoulder.created_at == T0
    candidates = clinic.lesions.lesions_of(clinic.nurse, patient, body_site="back")
    assert [c.id for c in candidates] == [shoulder.id, lower.id]
    assert [c.id for c in clinic.lesions.lesions_of(clinic.nurse, patient)] == [
        shoulder.id, lower.id, arm.id]
    assert clinic.lesions.lesions_of(clinic.nurse, clinic.patient("P-0002"), "back") == []
    # the label is encrypted at rest like notes
    with clinic.station.database.engine.connect() as connection:
        stored = connection.exec_driver_sql(
            f"SELECT label FROM lesions WHERE id = {shoulder.id}").scalar()
    assert stored != "mole left shoulder"


@pytest.mark.parametrize(("view", "side", "x", "y", "message"), [
    ("top", "left", 0.5, 0.5, "view must be one of front, back; got 'top'"),
    ("front", "up", 0.5, 0.5, "side must be one of left, right, midline; got 'up'"),
    ("front", "left", 1.5, 0.5, "x must be between 0 and 1; got 1.5"),
    ("front", "left", 0.5, -0.1, "y must be between 0 and 1; got -0.1"),
])
def test_a_bad_placement_is_refused_and_nothing_is_stored(
        clinic: Clinic, view: str, side: str, x: float, y: float, message: str) -> None:
    patient = clinic.patient("P-0001")
    with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
        clinic.lesions.create_lesion(clinic.nurse, patient, "back", view, side, x, y)
    assert clinic.count(Lesion) == 0


def test_a_capture_saved_to_a_lesion_names_it_and_another_patients_lesion_is_refused(
        clinic: Clinic) -> None:
    ann, bob = clinic.patient("P-ANN"), clinic.patient("P-BOB")
    ann_lesion = clinic.lesions.create_lesion(clinic.nurse, ann, "back", "back", "left", 0.3, 0.3)
    bob_lesion = clinic.lesions.create_lesion(clinic.nurse, bob, "back", "back", "left", 0.3, 0.3)
    visit = clinic.visit(ann)
    capture_id = clinic.capture(visit, at=T0, lesion_id=ann_lesion.id)
    with clinic.station.database.transaction() as db:
        assert db.get(Capture, capture_id).lesion_id == ann_lesion.id  # type: ignore[union-attr]
    assert clinic.audit("capture.saved")[-1][1]["lesion_id"] == ann_lesion.id
    before = (clinic.count(Capture), clinic.count(OutboxEntry))
    with pytest.raises(ValueError, match=f"^lesion {bob_lesion.id} is not a lesion of this "
                                         "visit's patient$"):
        clinic.capture(visit, at=T0, lesion_id=bob_lesion.id, seed=1)
    assert (clinic.count(Capture), clinic.count(OutboxEntry)) == before
    assert len(clinic.audit("capture.saved")) == 1
    # a capture of no lesion stays without one; it can be assigned later, not to Bob's lesion
    loose = clinic.capture(visit, at=T0, seed=2)
    with pytest.raises(ValueError, match="is not a lesion of this capture's patient"):
        clinic.lesions.assign_capture(clinic.nurse, loose, bob_lesion.id)
    clinic.lesions.assign_capture(clinic.nurse, loose, ann_lesion.id)
    assert clinic.lesions.lesion(clinic.nurse, ann_lesion.id).captures == 2
    assert clinic.audit("lesion.capture_assigned") == [(str(loose), {"lesion_id": ann_lesion.id})]


def test_the_timeline_lists_a_lesions_captures_in_date_order_with_decisions_and_reviews(
        clinic: Clinic) -> None:
    patient = clinic.patient("P-0001")
    lesion = clinic.lesions.create_lesion(clinic.nurse, patient, "back", "back", "left", 0.3, 0.3)
    first_visit = clinic.visit(patient)
    later = clinic.capture(first_visit, at=T0 + timedelta(days=90), lesion_id=lesion.id, seed=1)
    earlier = clinic.capture(first_visit, at=T0, lesion_id=lesion.id, seed=2)
    clinic.capture(first_visit, at=T0, seed=3)  # another spot: not on the timeline
    clinic.predict(earlier, "benign", False)
    clinic.predict(later, "skin_cancer", True)
    clinic.station.label(clinic.nurse, earlier, "nv")
    clinic.station.store.add_review(later, "mel", author_id=clinic.derm.operator_id)
    timeline = clinic.lesions.lesion_timeline(clinic.nurse, lesion.id)
    assert [(t.capture_id, t.decision, t.referral, t.review_state.value, t.final_label)
            for t in timeline] == [(earlier, "benign", False, "unreviewed", "nv"),
                                   (later, "skin_cancer", True, "reviewed", "mel")]
    info = clinic.lesions.lesion(clinic.nurse, lesion.id)
    assert (info.captures, info.last_capture_at) == (2, T0 + timedelta(days=90))
    assert clinic.audit("lesion.timeline_viewed") == [(str(lesion.id), {"rows": 2})]


def test_the_patient_list_counts_visits_open_referrals_and_lesions(clinic: Clinic) -> None:
    ann, bob, cid = clinic.patient("P-ANN"), clinic.patient("P-BOB"), clinic.patient("Q-CID")
    clinic.lesions.create_lesion(clinic.nurse, ann, "back", "back", "left", 0.3, 0.3)
    clinic.lesions.create_lesion(clinic.nurse, ann, "chest", "front", "midline", 0.5, 0.3)
    visit = clinic.visit(ann)
    suspect, referred, reviewed, benign = (clinic.capture(visit, at=T0, seed=s) for s in range(4))
    clinic.predict(suspect, "skin_cancer", False)
    clinic.predict(referred, "indeterminate", True)
    clinic.predict(reviewed, "skin_cancer", True)
    clinic.predict(benign, "benign", False)
    clinic.station.review(clinic.derm, reviewed, "mel")
    clinic.clock.advance(minutes=5)
    bob_visit = clinic.station.start_visit(clinic.nurse, bob)
    rows = clinic.lesions.patient_list(clinic.nurse)
    assert [(r.pseudonym, r.visits, r.open_referrals, r.lesions, r.last_visit_at)
            for r in rows] == [("P-BOB", 1, 0, 0, bob_visit.opened_at),
                               ("P-ANN", 1, 2, 2, T0), ("Q-CID", 0, 0, 0, None)]
    assert [r.patient_id for r in rows] == [bob, ann, cid]
    assert [r.pseudonym for r in clinic.lesions.patient_list(clinic.nurse, " p-a ")] == ["P-ANN"]
    assert clinic.lesions.patient_list(clinic.nurse, "zzz") == []
    assert clinic.audit("patient_list.viewed")[-1][1] == {"searched": True, "rows": 0}


def test_demographics_are_validated_stored_listed_and_audited_without_values(
        clinic: Clinic) -> None:
    patient = clinic.patient("P-0001")
    for sex, year, skin, message in [
        ("woman", None, None, "sex must be one of female, male, other, unknown; got 'woman'"),
        (None, 1899, None, "birth year must be between 1900 and 2026; got 1899"),
        (None, 2027, None, "birth year must be between 1900 and 2026; got 2027"),
        (None, None, 7, "Fitzpatrick skin type must be 1 to 6; got 7"),
        (None, None, 0, "Fitzpatrick skin type must be 1 to 6; got 0"),
    ]:
        with pytest.raises(ValueError) as raised:
            clinic.lesions.set_demographics(clinic.nurse, patient, sex, year, skin)
        assert str(raised.value) == message
    assert clinic.audit("patient.demographics_changed") == []
    stored = clinic.lesions.set_demographics(clinic.nurse, patient, "female", 1961, 2)
    assert (stored.sex, stored.birth_year, stored.fitzpatrick) == ("female", 1961, 2)
    row = clinic.lesions.patient_list(clinic.nurse)[0]
    assert (row.sex, row.birth_year, row.fitzpatrick) == ("female", 1961, 2)
    clinic.lesions.set_demographics(clinic.nurse, patient, "female", None, 2)
    assert clinic.lesions.demographics(clinic.nurse, patient).birth_year is None
    assert clinic.audit("patient.demographics_changed") == [
        (str(patient), {"fields": ["birth_year", "fitzpatrick", "sex"]}),
        (str(patient), {"fields": ["birth_year"]})]
    with pytest.raises(PermissionDeniedError):
        clinic.lesions.set_demographics(clinic.admin, patient, "male", None, None)
    with pytest.raises(PermissionDeniedError):
        clinic.lesions.create_lesion(clinic.admin, patient, "back", "back", "left", 0.5, 0.5)


def test_an_overview_capture_marks_the_lesion_and_erasure_removes_lesions(clinic: Clinic) -> None:
    ann, bob = clinic.patient("P-ANN"), clinic.patient("P-BOB")
    lesion = clinic.lesions.create_lesion(clinic.nurse, ann, "back", "back", "left", 0.3, 0.3)
    kept = clinic.lesions.create_lesion(clinic.nurse, bob, "back", "back", "left", 0.3, 0.3)
    overview = clinic.capture(clinic.visit(ann), at=T0, body_site="back")
    clinic.capture(clinic.visit(ann), at=T0, lesion_id=lesion.id, seed=1)
    bob_capture = clinic.capture(clinic.visit(bob), at=T0, lesion_id=kept.id, seed=2)
    with pytest.raises(ValueError, match="is not of this lesion's patient"):
        clinic.lesions.set_overview(clinic.nurse, lesion.id, bob_capture, 0.5, 0.5)
    marked = clinic.lesions.set_overview(clinic.nurse, lesion.id, overview, 0.4, 0.6)
    assert (marked.overview_capture_id, marked.overview_point) == (overview, (0.4, 0.6))
    report = erase_patient(clinic.station.database, ann, actor_id=clinic.admin.operator_id,
                           reason="patient_request")
    assert (report.counts.lesions, report.counts.captures) == (1, 2)  # and the audit row says so
    with clinic.station.database.transaction() as db:
        assert list(db.scalars(select(Lesion.id))) == [kept.id]
        assert db.scalar(select(func.count()).select_from(Patient)) == 1
    assert clinic.lesions.lesions_of(clinic.nurse, bob)[0].captures == 1


def test_retention_clears_an_overview_capture_it_erases(clinic: Clinic) -> None:
    patient = clinic.patient("P-0001")
    lesion = clinic.lesions.create_lesion(clinic.nurse, patient, "back", "back", "left", 0.3, 0.3)
    overview = clinic.capture(clinic.visit(patient), at=T0)
    clinic.lesions.set_overview(clinic.nurse, lesion.id, overview, 0.4, 0.6)
    apply_retention(clinic.station.database, T0 + timedelta(days=6 * 366), years=5)
    assert clinic.count(Capture) == 0
    kept = clinic.lesions.lesion(clinic.nurse, lesion.id)
    assert (kept.overview_capture_id, kept.overview_point, kept.captures) == (None, None, 0)


@pytest.mark.parametrize("backend", BACKENDS)
def test_migration_0010_keeps_captures_and_patients_both_ways(settings: Settings,
                                                              backend: str) -> None:
    with open_backend(settings, backend) as database:
        clock = FakeClock(T0)
        store = StationStore(database, clock=clock)
        nurse = add_operator(database, "nurse", "staff")
        patient = store.create_patient("P-0001", actor_id=nurse)
        visit = store.open_visit(patient.id, operator_id=nurse)
        pixels = np.zeros((8, 8, 3), np.uint8)
        capture = store.save_capture(visit.id, pixels, band="white", body_site="back",
                                     device_id="cam-1", operator_id=nurse, access_time=T0,
                                     capture_time=T0)
        config = alembic_config(database.engine)
        command.downgrade(config, "0009")
        with database.engine.connect() as connection:
            assert connection.scalar(text("SELECT uid FROM captures")) == capture.uid
            assert "lesions" not in inspect(connection).get_table_names()
        command.upgrade(config, "head")
        assert current_revision(database.engine) == head_revision() == "0011"
        with database.engine.connect() as connection:
            assert tuple(connection.execute(text(
                "SELECT uid, lesion_id FROM captures")).one()) == (capture.uid, None)
            assert compare_metadata(MigrationContext.configure(
                connection, opts={"compare_type": True}), Base.metadata) == []
        with pytest.raises(DBAPIError, match=r"(?i)foreign key"), \
                database.engine.begin() as connection:
            connection.execute(text(f"UPDATE captures SET lesion_id = 99 WHERE id = {capture.id}"))
