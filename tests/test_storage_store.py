"""``StationStore``: patients, visits, captures, predictions, labels, queries and audit."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import func, select, text, update
from sqlalchemy.exc import DatabaseError

from skinstation.core.crypto import STATION_KEYS, data_cipher
from skinstation.settings import Settings
from skinstation.storage import (
    AppendOnlyError,
    AuditAction,
    AuditEvent,
    Capture,
    Database,
    DuplicateError,
    ImageIntegrityError,
    InactiveOperatorError,
    Label,
    LabelRuleError,
    NotFoundError,
    OutboxEntry,
    PatientNameNotAllowedError,
    ReviewState,
    StationStore,
    VisitClosedError,
)
from tests.test_storage_helpers import BACKENDS, FakeClock, add_operator, open_backend

T0 = datetime(2025, 3, 14, 9, 0, tzinfo=UTC)
PROBS = {"akiec": 0.05, "bcc": 0.1, "bkl": 0.05, "df": 0.05, "mel": 0.5, "nv": 0.2, "vasc": 0.05}
GROUPS = {"skin_cancer": 0.6, "other_disease": 0.1, "benign": 0.3}


@dataclass
class World:
    database: Database
    store: StationStore
    clock: FakeClock
    staff: int
    derm: int
    derm2: int
    patient: int
    visit: int

    def capture(self, minutes: int = 0, seed: int = 0, **kwargs: object) -> Capture:
        pixels = np.random.default_rng(seed).integers(0, 256, (16, 24, 3), dtype=np.uint8)
        values: dict[str, object] = {
            "band": "white",
            "body_site": "left forearm",
            "device_id": "cam-1",
            "operator_id": self.staff,
            "access_time": T0,
            "capture_time": T0 + timedelta(minutes=minutes),
        }
        values.update(kwargs)
        return self.store.save_capture(self.visit, pixels, **values)  # type: ignore[arg-type]

    def predict(self, capture_id: int, decision: str, referral: bool | None = None) -> None:
        self.store.save_prediction(
            capture_id,
            model_version="m-1",
            class_probabilities=PROBS,
            group_probabilities=GROUPS,
            decision=decision,
            referral=referral,
        )

    def audit_rows(self, action: AuditAction) -> list[AuditEvent]:
        with self.database.transaction() as session:
            stmt = select(AuditEvent).where(AuditEvent.action == action.value)
            return list(session.scalars(stmt.order_by(AuditEvent.id)))


def _world(database: Database) -> World:
    clock = FakeClock()
    store = StationStore(database, clock=clock)
    staff = add_operator(database, "sam", "staff")
    derm = add_operator(database, "dana", "dermatologist")
    derm2 = add_operator(database, "dora", "dermatologist")
    patient = store.create_patient("P-0001", actor_id=staff)
    visit = store.open_visit(patient.id, operator_id=staff)
    return World(database, store, clock, staff, derm, derm2, patient.id, visit.id)


@pytest.fixture(params=BACKENDS)
def world(request: pytest.FixtureRequest, settings: Settings) -> Iterator[World]:
    with open_backend(settings, request.param) as database:
        yield _world(database)


@pytest.fixture()
def sqlite_world(settings: Settings) -> Iterator[World]:
    with open_backend(settings, "sqlite") as database:
        yield _world(database)


def test_patient_names_are_refused_unless_enabled(sqlite_world: World) -> None:
    w = sqlite_world
    with pytest.raises(PatientNameNotAllowedError, match="does not store patient names"):
        w.store.create_patient("P-0002", actor_id=w.staff, name="Jane Doe")
    assert w.store.find_patient("P-0002", actor_id=w.staff) is None
    named = StationStore(w.database, store_patient_names=True)
    assert named.create_patient("P-0003", actor_id=w.staff, name="Jane Doe").name == "Jane Doe"
    with pytest.raises(DuplicateError, match="patient 'P-0001' already exists"):
        w.store.create_patient("P-0001", actor_id=w.staff)


def test_find_patient_is_audited_even_when_not_found(sqlite_world: World) -> None:
    w = sqlite_world
    found = w.store.find_patient("P-0001", actor_id=w.derm)
    assert found is not None and found.id == w.patient and found.name is None
    assert w.store.find_patient("nobody", actor_id=w.derm) is None
    rows = w.audit_rows(AuditAction.PATIENT_VIEWED)
    assert [(r.actor_id, r.entity_id, r.detail) for r in rows] == [
        (w.derm, str(w.patient), {"found": True}),
        (w.derm, None, {"found": False}),
    ]


def test_save_capture_records_everything_and_enqueues_it(world: World) -> None:
    group = str(uuid.uuid4())
    w = world
    capture = w.capture(band="nir_850", multispectral_group_id=group, multispectral_index=6)
    assert (capture.band, capture.body_site, capture.device_id) == (
        "nir_850",
        "left forearm",
        "cam-1",
    )
    assert (capture.width, capture.height, capture.image_format) == (24, 16, "png")
    assert (capture.access_time, capture.capture_time, capture.saved_at) == (T0, T0, w.clock.now)
    assert (capture.station_id, capture.operator_id, capture.uploaded_at) == (
        "station-1",
        w.staff,
        None,
    )
    assert (capture.multispectral_group_id, capture.multispectral_index) == (group, 6)
    assert len(capture.uid) == 36
    data = w.store.read_image(capture.id, actor_id=w.derm)
    assert len(data) == capture.image_size
    with w.database.transaction() as session:
        outbox = session.scalars(select(OutboxEntry)).all()
        assert [(o.capture_id, o.state, o.attempts) for o in outbox] == [(capture.id, "pending", 0)]
    saved = w.audit_rows(AuditAction.CAPTURE_SAVED)
    assert [(r.actor_id, r.entity_type, r.entity_id) for r in saved] == [
        (w.staff, "capture", str(capture.id))
    ]
    assert saved[0].detail == {"sha256": capture.image_sha256, "band": "nir_850"}
    assert [r.actor_id for r in w.audit_rows(AuditAction.IMAGE_VIEWED)] == [w.derm]


def test_real_jpeg_is_stored_byte_for_byte(sqlite_world: World, real_image_path: Path) -> None:
    w = sqlite_world
    original = real_image_path.read_bytes()
    capture = w.store.save_capture(
        w.visit,
        original,
        band="white",
        body_site="back",
        device_id="dermatoscope-2",
        operator_id=w.staff,
        access_time=T0,
        capture_time=T0,
    )
    assert capture.image_format == "jpg"
    stored = w.database.images.path_for(capture.image_ref).read_bytes()  # encrypted at rest
    assert data_cipher(STATION_KEYS).decrypt_blob(stored, context=capture.image_ref) == original
    assert w.store.read_image(capture.id, actor_id=w.staff) == original


def test_tampered_image_is_reported_on_read(sqlite_world: World) -> None:
    w = sqlite_world
    capture = w.capture()
    w.database.images.path_for(capture.image_ref).write_bytes(b"\x89PNG tampered")
    with pytest.raises(
        ImageIntegrityError, match=f"fails its integrity check.*{capture.image_sha256}"
    ):
        w.store.read_image(capture.id, actor_id=w.derm)


def test_capture_rules(sqlite_world: World) -> None:
    w = sqlite_world
    group = str(uuid.uuid4())
    w.capture(multispectral_group_id=group, multispectral_index=0)
    with pytest.raises(DuplicateError, match=f"multispectral group {group} already has index 0"):
        w.capture(seed=1, multispectral_group_id=group, multispectral_index=0)
    with pytest.raises(
        ValueError, match="give both multispectral_group_id and multispectral_index"
    ):
        w.capture(multispectral_group_id=group)
    with pytest.raises(ValueError, match="capture_time: datetime must be timezone-aware"):
        w.capture(capture_time=datetime(2025, 1, 1))
    with pytest.raises(ValueError, match="band must be a non-empty string"):
        w.capture(band="  ")
    with pytest.raises(NotFoundError, match="operator 999 does not exist"):
        w.capture(operator_id=999)
    disabled = add_operator(w.database, "olly", "staff", disabled=True)
    with pytest.raises(InactiveOperatorError, match="operator 'olly' is disabled"):
        w.capture(operator_id=disabled)
    w.store.close_visit(w.visit, operator_id=w.staff)
    with pytest.raises(VisitClosedError, match=f"visit {w.visit} is closed"):
        w.capture(seed=2)
    with w.database.transaction() as session:
        assert session.scalar(select(func.count()).select_from(Capture)) == 1


def test_prediction_validation(sqlite_world: World) -> None:
    w = sqlite_world
    capture = w.capture()
    with pytest.raises(ValueError, match="decision must be one of"):
        w.predict(capture.id, "maybe")
    with pytest.raises(ValueError, match=r"class_probabilities\['mel'\] must be within \[0, 1\]"):
        w.store.save_prediction(
            capture.id,
            model_version="m",
            class_probabilities={"mel": 1.5},
            group_probabilities=GROUPS,
            decision="benign",
        )
    w.predict(capture.id, "indeterminate", referral=None)
    with pytest.raises(NotFoundError, match="capture 404 does not exist"):
        w.predict(404, "benign")


def test_original_label_is_kept_and_final_is_latest_review(world: World) -> None:
    w = world
    capture = w.capture()
    original = w.store.add_operator_label(capture.id, "nv", author_id=w.staff, note="looks benign")
    with pytest.raises(DuplicateError, match="already has its original label"):
        w.store.add_operator_label(capture.id, "mel", author_id=w.staff)
    first = w.store.add_review(capture.id, "mel", author_id=w.derm)
    second = w.store.add_review(capture.id, "bcc", author_id=w.derm2)
    labels = w.store.labels(capture.id, actor_id=w.derm)
    assert labels.original is not None and labels.original.id == original.id
    assert (labels.original.code, labels.original.author_id) == ("nv", w.staff)
    assert [(r.code, r.author_id) for r in labels.reviews] == [("mel", w.derm), ("bcc", w.derm2)]
    assert labels.final is not None and labels.final.id == second.id
    with pytest.raises(LabelRuleError, match=f"review {first.id} has been superseded by review"):
        w.store.revise_review(first.id, "akiec", author_id=w.derm)
    with pytest.raises(
        LabelRuleError, match=f"only the dermatologist who wrote review {second.id}"
    ):
        w.store.revise_review(second.id, "akiec", author_id=w.derm)
    revised = w.store.revise_review(second.id, "akiec", author_id=w.derm2)
    assert (revised.supersedes_id, revised.code) == (second.id, "akiec")
    final = w.store.labels(capture.id, actor_id=w.derm).final
    assert final is not None and final.id == revised.id
    with w.database.transaction() as session:
        codes = session.scalars(select(Label.code).order_by(Label.id)).all()
    assert codes == ["nv", "mel", "bcc", "akiec"]  # nothing overwritten
    actions = [r.detail["supersedes"] for r in w.audit_rows(AuditAction.REVIEW_REVISED)]
    assert actions == [second.id]


def test_only_dermatologists_review_and_codes_are_checked(sqlite_world: World) -> None:
    w = sqlite_world
    capture = w.capture()
    with pytest.raises(
        LabelRuleError, match="only a dermatologist can review a capture; 'sam' is staff"
    ):
        w.store.add_review(capture.id, "mel", author_id=w.staff)
    with pytest.raises(ValueError, match="label code must be"):
        w.store.add_review(capture.id, "Melanoma!", author_id=w.derm)
    assert w.store.labels(capture.id, actor_id=w.derm).final is None


def test_history_filters_and_final_labels(world: World) -> None:
    w = world
    other = w.store.create_patient("P-0002", actor_id=w.staff)
    other_visit = w.store.open_visit(other.id, operator_id=w.staff)
    a = w.capture(minutes=0, seed=1)
    b = w.capture(minutes=10, seed=2)
    c = w.store.save_capture(
        other_visit.id,
        np.full((8, 8, 3), 3, np.uint8),
        band="white",
        body_site="neck",
        device_id="cam-1",
        operator_id=w.staff,
        access_time=T0,
        capture_time=T0 + timedelta(minutes=20),
    )
    w.predict(a.id, "benign")
    w.predict(b.id, "benign")
    w.predict(b.id, "skin_cancer", referral=True)  # latest prediction wins
    w.store.add_operator_label(a.id, "nv", author_id=w.staff)
    w.store.add_operator_label(b.id, "nv", author_id=w.staff)
    w.store.add_review(b.id, "mel", author_id=w.derm)

    everything = w.store.history(actor_id=w.staff)
    assert [r.capture_id for r in everything] == [c.id, b.id, a.id]  # newest first
    row_b = everything[1]
    assert (row_b.pseudonym, row_b.decision, row_b.referral, row_b.model_version) == (
        "P-0001",
        "skin_cancer",
        True,
        "m-1",
    )
    assert (row_b.original_label, row_b.final_label, row_b.review_state) == (
        "nv",
        "mel",
        ReviewState.REVIEWED,
    )
    row_c = everything[0]
    assert (row_c.decision, row_c.final_label, row_c.review_state) == (
        None,
        None,
        ReviewState.UNREVIEWED,
    )
    assert everything[2].final_label == "nv"

    def ids(**filters: object) -> list[int]:
        return [r.capture_id for r in w.store.history(actor_id=w.staff, **filters)]  # type: ignore[arg-type]

    assert ids(patient_id=w.patient) == [b.id, a.id]
    assert ids(since=T0 + timedelta(minutes=10)) == [c.id, b.id]
    assert ids(until=T0 + timedelta(minutes=10)) == [a.id]
    assert ids(decision="benign") == [a.id]
    assert ids(review_state=ReviewState.REVIEWED) == [b.id]
    assert ids(review_state=ReviewState.UNREVIEWED, patient_id=w.patient) == [a.id]
    assert ids(limit=1) == [c.id]
    with pytest.raises(NotFoundError, match="patient 999 does not exist"):
        w.store.history(actor_id=w.staff, patient_id=999)
    audited = w.audit_rows(AuditAction.HISTORY_VIEWED)
    assert audited[0].detail == {
        "patient_id": None,
        "since": None,
        "until": None,
        "decision": None,
        "review_state": None,
        "rows": 3,
    }
    assert audited[1].entity_id == str(w.patient)


def test_review_queue_puts_suspected_cancer_and_indeterminate_first(world: World) -> None:
    w = world
    benign_old = w.capture(minutes=0, seed=1)
    cancer = w.capture(minutes=5, seed=2)
    other_old = w.capture(minutes=1, seed=3)
    indeterminate = w.capture(minutes=3, seed=4)
    referred_benign = w.capture(minutes=4, seed=5)
    reviewed_cancer = w.capture(minutes=-5, seed=6)
    unpredicted = w.capture(minutes=-10, seed=7)
    w.predict(benign_old.id, "benign")
    w.predict(cancer.id, "skin_cancer")
    w.predict(other_old.id, "other_disease")
    w.predict(indeterminate.id, "indeterminate")
    w.predict(referred_benign.id, "benign", referral=True)
    w.predict(reviewed_cancer.id, "skin_cancer")
    w.store.add_review(reviewed_cancer.id, "bcc", author_id=w.derm)

    queue = w.store.review_queue(actor_id=w.derm)

    assert [r.capture_id for r in queue] == [
        indeterminate.id,  # urgent tier, oldest first
        referred_benign.id,
        cancer.id,
        benign_old.id,  # then the rest, oldest first
        other_old.id,
    ]
    assert unpredicted.id not in [r.capture_id for r in queue]
    assert [r.detail for r in w.audit_rows(AuditAction.REVIEW_QUEUE_VIEWED)] == [{"rows": 5}]


def test_reads_of_patient_data_are_audited(sqlite_world: World) -> None:
    w = sqlite_world
    capture = w.capture()
    assert w.store.get_capture(capture.id, actor_id=w.derm).id == capture.id
    assert [c.id for c in w.store.captures_of_visit(w.visit, actor_id=w.derm)] == [capture.id]
    w.store.labels(capture.id, actor_id=w.derm2)
    viewed = w.audit_rows(AuditAction.CAPTURE_VIEWED)
    assert [(r.actor_id, r.entity_type, r.entity_id) for r in viewed] == [
        (w.derm, "capture", str(capture.id)),
        (w.derm, "visit", str(w.visit)),
    ]
    assert [r.actor_id for r in w.audit_rows(AuditAction.LABELS_VIEWED)] == [w.derm2]
    log = w.store.audit_log(actor_id=w.staff, entity_type="capture", entity_id=capture.id)
    assert [r.action for r in log] == ["capture.saved", "capture.viewed", "labels.viewed"]
    assert w.audit_rows(AuditAction.AUDIT_LOG_VIEWED)[0].detail == {
        "entity_type": "capture",
        "entity_id": str(capture.id),
    }


def test_audit_log_and_labels_are_append_only_in_python(sqlite_world: World) -> None:
    w = sqlite_world
    capture = w.capture()
    w.store.add_operator_label(capture.id, "nv", author_id=w.staff)
    with (
        pytest.raises(AppendOnlyError, match="audit_log rows may not be changed"),
        w.database.transaction() as session,
    ):
        session.scalars(select(AuditEvent)).first().action = "forged"  # type: ignore[union-attr]
    with (
        pytest.raises(AppendOnlyError, match="labels rows may not be deleted"),
        w.database.transaction() as session,
    ):
        session.delete(session.scalars(select(Label)).one())


@pytest.mark.parametrize("backend", BACKENDS)
def test_audit_log_and_labels_are_append_only_in_sql(settings: Settings, backend: str) -> None:
    with open_backend(settings, backend) as database:
        w = _world(database)
        capture = w.capture()
        w.store.add_operator_label(capture.id, "nv", author_id=w.staff)
        statements = [
            update(AuditEvent).values(action="forged"),
            text("DELETE FROM audit_log"),
            update(Label).values(code="mel"),
            text("DELETE FROM labels"),
        ]
        for statement in statements:
            with (
                pytest.raises(DatabaseError, match="is append-only"),
                database.engine.begin() as connection,
            ):
                connection.execute(statement)
        with database.transaction() as session:
            assert session.scalar(select(Label.code)) == "nv"
            assert session.scalar(select(func.count()).select_from(AuditEvent)) == 4
