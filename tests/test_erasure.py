"""Erasure and retention on the station, on SQLite and PostgreSQL: a patient's images,
captures, labels, predictions, engine reviews and outbox entries go in one transaction, image
files only when no other capture shares them, the audit log gains one row that names no patient
and stays intact, the labels trigger is back afterwards; a failure erases nothing. Retention
erases only captures older than N years, once a day, with an injected clock. The CLI asks
before erasing. (The engine side and the sync round: ``test_erasure_engine.py``.)"""

from __future__ import annotations

import datetime as dt
import io
from pathlib import Path

import pytest
from sqlalchemy import func, select, text
from sqlalchemy.exc import DBAPIError

from skinstation.cli import main
from skinstation.inference.model_file import ModelMetadata
from skinstation.settings import Settings
from skinstation.storage import (
    AuditEvent,
    Database,
    InactiveOperatorError,
    NotFoundError,
    ReceivedReview,
    StationStore,
    SyncRecords,
    init_database,
)
from skinstation.storage.audit import verify_audit_log
from skinstation.storage.erasure import (
    ErasureCounts,
    apply_retention,
    erase_patient,
    run_retention_if_due,
)
from skinstation.storage.models import Erasure
from skinstation.training.model_card import render_model_card
from tests.test_engine_helpers import ham_images
from tests.test_storage_helpers import BACKENDS, FakeClock, add_operator, open_backend

PSEUDONYM = "PSN-ERASE-7731"
KEPT = "PSN-KEEP-0002"
TABLES = ("patients", "visits", "captures", "predictions", "labels", "engine_reviews", "outbox",
          "erasures")
CLASSES = {"akiec": 0.1, "bcc": 0.1, "bkl": 0.1, "df": 0.1, "mel": 0.1, "nv": 0.4, "vasc": 0.1}
GROUPS = {"skin_cancer": 0.3, "other_disease": 0.2, "benign": 0.5}


def _counts(database: Database) -> dict[str, int]:
    with database.engine.connect() as connection:
        return {table: connection.scalar(text(f"SELECT count(*) FROM {table}"))
                for table in TABLES}


def _files(database: Database) -> int:
    return len(list(database.images.files()))


def _audit_dump(database: Database) -> str:
    with database.engine.connect() as connection:
        return " ".join(str(tuple(row)) for row in connection.execute(
            text("SELECT * FROM audit_log ORDER BY id")))


def _capture(store: StationStore, visit_id: int, image: bytes, operator: int,
             when: dt.datetime) -> int:
    capture = store.save_capture(visit_id, image, band="white", body_site="back",
                                 device_id="dermatoscope-1", operator_id=operator,
                                 access_time=when, capture_time=when)
    store.save_prediction(capture.id, model_version="m1", class_probabilities=CLASSES,
                          group_probabilities=GROUPS, decision="benign")
    store.add_operator_label(capture.id, "nv", author_id=operator)
    return capture.id


def _two_patients(database: Database, images: list[bytes],
                  clock: FakeClock) -> tuple[int, int, int, list[int], list[int]]:
    """Patient A: 2 visits, 3 captures (one reviewed here, one on the engine); patient B: 2
    captures, one with the same image bytes as one of A's. Returns (admin, a, b, A's, B's)."""
    nurse = add_operator(database, "nurse", "staff")
    derm = add_operator(database, "drkim", "dermatologist")
    admin = add_operator(database, "admin", "admin")
    store = StationStore(database, clock=clock)
    a = store.create_patient(PSEUDONYM, actor_id=nurse).id
    b = store.create_patient(KEPT, actor_id=nurse).id
    a1, a2 = (store.open_visit(a, operator_id=nurse).id for _ in range(2))
    b1 = store.open_visit(b, operator_id=nurse).id
    when = clock()
    mine = [_capture(store, a1, images[0], nurse, when),
            _capture(store, a1, images[1], nurse, when),
            _capture(store, a2, images[2], nurse, when)]
    theirs = [_capture(store, b1, images[2], nurse, when),
              _capture(store, b1, images[3], nurse, when)]
    store.add_review(mine[0], "mel", author_id=derm)
    uid = store.get_capture(mine[1], actor_id=nurse).uid
    SyncRecords(database, clock=clock).record_engine_review(ReceivedReview(
        engine_review_id=41, capture_uid=uid, code="bkl", note=None, reviewer_username="drlee",
        reviewer_name="Dr Lee", reviewed_at=when))
    return admin, a, b, mine, theirs


@pytest.mark.parametrize("backend", BACKENDS)
def test_erasing_a_patient_removes_their_rows_and_files_and_keeps_the_other_patient(
        settings: Settings, ham_dir: Path, backend: str) -> None:
    images = [path.read_bytes() for path in ham_images(ham_dir, 4, skip=2200)]
    with open_backend(settings, backend) as database:
        clock = FakeClock()
        admin, a, b, mine, theirs = _two_patients(database, images, clock)
        with database.transaction() as session:
            uids = list(session.scalars(text("SELECT uid FROM captures WHERE id IN "
                                             f"({', '.join(map(str, mine))}) ORDER BY id")))
        before = _counts(database)
        assert before == {"patients": 2, "visits": 3, "captures": 5, "predictions": 5,
                          "labels": 7, "engine_reviews": 1, "outbox": 5, "erasures": 0}
        assert _files(database) == 4

        report = erase_patient(database, a, actor_id=admin, reason="patient_request",
                               clock=clock)
        assert report.counts == ErasureCounts(patients=1, visits=2, captures=3, predictions=3,
                                              labels=5, engine_reviews=1, outbox=3,
                                              image_files=2)
        assert (report.erasure_id, report.images_deleted) == (1, 2)
        assert _counts(database) == {"patients": 1, "visits": 1, "captures": 2, "predictions": 2,
                                     "labels": 2, "engine_reviews": 0, "outbox": 2, "erasures": 1}
        assert _files(database) == 2  # B's two images; the one A shared with B stays
        store = StationStore(database, clock=clock)
        for capture_id, image in zip(theirs, images[2:], strict=True):
            assert store.read_image(capture_id, actor_id=admin) == image
            assert store.labels(capture_id, actor_id=admin).final.code == "nv"
        assert [row.pseudonym for row in store.history(actor_id=admin)] == [KEPT, KEPT]

        with database.transaction() as session:
            erasure = session.get(Erasure, 1)
            assert (erasure.state, erasure.reason, erasure.pseudonym, erasure.capture_uids) == (
                "pending", "patient_request", PSEUDONYM, uids)
            erased = list(session.scalars(select(AuditEvent).where(
                AuditEvent.action == "patient.erased")))
            assert [(row.actor_id, row.entity_type, row.entity_id) for row in erased] == [
                (admin, "erasure", "1")]
            assert erased[0].detail == {"reason": "patient_request", "patients": 1, "visits": 2,
                                        "lesions": 0, "captures": 3, "predictions": 3, "labels": 5,
                                        "engine_reviews": 1, "outbox": 3, "image_files": 2}
            assert verify_audit_log(session).intact
        assert PSEUDONYM not in _audit_dump(database)
        for statement in ("DELETE FROM labels", "UPDATE labels SET code = 'mel'"):
            with pytest.raises(DBAPIError, match="labels is append-only"), \
                    database.engine.begin() as connection:
                connection.execute(text(statement))
        with pytest.raises(DBAPIError, match="audit_log is append-only"), \
                database.engine.begin() as connection:
            connection.execute(text("DELETE FROM audit_log"))

        with pytest.raises(NotFoundError, match=f"patient {a} does not exist"):
            erase_patient(database, a, actor_id=admin, reason="patient_request")
        for reason in ("retention", "she asked us to"):
            with pytest.raises(ValueError, match="erasure reason must be one of "
                               f"patient_request, entered_in_error; got '{reason}'"):
                erase_patient(database, b, actor_id=admin, reason=reason)
        gone = add_operator(database, "former", "admin", disabled=True)
        with pytest.raises(InactiveOperatorError, match="operator 'former' is disabled"):
            erase_patient(database, b, actor_id=gone, reason="entered_in_error")
        assert _counts(database)["captures"] == 2


_FAULT = {
    "sqlite": ["CREATE TRIGGER inject_fault BEFORE INSERT ON erasures "
               "BEGIN SELECT RAISE(ABORT, 'injected fault'); END"],
    "postgresql": ["CREATE FUNCTION inject_fault() RETURNS trigger LANGUAGE plpgsql AS "
                   "$$ BEGIN RAISE EXCEPTION 'injected fault'; END $$",
                   "CREATE TRIGGER inject_fault BEFORE INSERT ON erasures FOR EACH ROW "
                   "EXECUTE FUNCTION inject_fault()"],
}


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_failed_erasure_erases_nothing_and_keeps_the_labels_trigger(
        settings: Settings, ham_dir: Path, backend: str) -> None:
    images = [path.read_bytes() for path in ham_images(ham_dir, 4, skip=2210)]
    with open_backend(settings, backend) as database:
        clock = FakeClock()
        admin, a, _, _, _ = _two_patients(database, images, clock)
        before, audit_rows = _counts(database), _audit_dump(database)
        with database.engine.begin() as connection:
            for statement in _FAULT[backend]:
                connection.exec_driver_sql(statement)
        with pytest.raises(DBAPIError, match="injected fault"):
            erase_patient(database, a, actor_id=admin, reason="entered_in_error")
        assert (_counts(database), _files(database), _audit_dump(database)) == (
            before, 4, audit_rows)
        with pytest.raises(DBAPIError, match="labels is append-only"), \
                database.engine.begin() as connection:
            connection.execute(text("DELETE FROM labels"))
        with database.engine.begin() as connection:
            connection.exec_driver_sql("DROP TRIGGER inject_fault" + (
                " ON erasures" if backend == "postgresql" else ""))
        assert erase_patient(database, a, actor_id=admin,
                             reason="entered_in_error").counts.captures == 3


@pytest.mark.parametrize("backend", BACKENDS)
def test_retention_erases_only_old_captures_once_a_day(settings: Settings, ham_dir: Path,
                                                       backend: str) -> None:
    images = [path.read_bytes() for path in ham_images(ham_dir, 5, skip=2220)]
    now = dt.datetime(2030, 6, 15, 12, 0, tzinfo=dt.UTC)
    with open_backend(settings.replace(retention_years=2), backend) as database:
        clock = FakeClock(now - dt.timedelta(days=3 * 365 + 1))
        nurse = add_operator(database, "nurse", "staff")
        store = StationStore(database, clock=clock)
        patient = store.create_patient(PSEUDONYM, actor_id=nurse).id
        old_visit = store.open_visit(patient, operator_id=nurse).id
        old = [_capture(store, old_visit, images[0], nurse, clock())]
        clock.now = now - dt.timedelta(days=2 * 365 + 2)
        mixed_visit = store.open_visit(patient, operator_id=nurse).id
        old.append(_capture(store, mixed_visit, images[1], nurse, now - dt.timedelta(days=731)))
        kept = [_capture(store, mixed_visit, images[2], nurse, now - dt.timedelta(days=700))]
        clock.now = now - dt.timedelta(days=10)
        new_visit = store.open_visit(patient, operator_id=nurse).id
        kept.append(_capture(store, new_visit, images[3], nurse, clock()))
        with database.transaction() as session:
            old_uids = list(session.scalars(text("SELECT uid FROM captures WHERE id IN "
                                                 f"({old[0]}, {old[1]}) ORDER BY id")))

        assert apply_retention(database, now, years=0) is None
        report = run_retention_if_due(database, now)
        assert report is not None and report.counts == ErasureCounts(
            visits=1, captures=2, predictions=2, labels=2, outbox=2, image_files=2)
        assert report.images_deleted == 2 and _files(database) == 2
        assert _counts(database) == {"patients": 1, "visits": 2, "captures": 2, "predictions": 2,
                                     "labels": 2, "engine_reviews": 0, "outbox": 2, "erasures": 1}
        history = StationStore(database).history(actor_id=nurse)
        assert sorted(row.capture_id for row in history) == kept

        # once a day: a capture dated five years back, saved now, waits for the next day
        clock.now = now + dt.timedelta(hours=23)
        late = _capture(store, new_visit, images[4], nurse, now - dt.timedelta(days=5 * 365))
        assert run_retention_if_due(database, clock()) is None
        assert _counts(database)["captures"] == 3
        again = run_retention_if_due(database, now + dt.timedelta(hours=25))
        assert again is not None and (again.counts.captures, again.counts.visits) == (1, 0)
        assert _counts(database)["captures"] == 2 and _files(database) == 2

        with database.transaction() as session:
            erasures = [(row.reason, row.pseudonym, row.capture_uids, row.state)
                        for row in session.scalars(select(Erasure).order_by(Erasure.id))]
            rows = list(session.scalars(select(AuditEvent).where(
                AuditEvent.action == "captures.erased").order_by(AuditEvent.id)))
            assert verify_audit_log(session).intact
        assert erasures[0] == ("retention", None, old_uids, "pending")
        assert len(erasures) == 2 and erasures[1][2] != []
        assert [(row.actor_id, row.entity_type, row.entity_id) for row in rows] == [
            (None, "erasure", "1"), (None, "erasure", "2")]
        assert rows[0].detail == {"reason": "retention", "retention_years": 2, "patients": 0,
                                  "visits": 1, "lesions": 0, "captures": 2, "predictions": 2,
                                  "labels": 2, "engine_reviews": 0, "outbox": 2, "image_files": 2}
        assert late not in kept and PSEUDONYM not in _audit_dump(database)
    with pytest.raises(ValueError, match=r"retention_years and engine\.retention_years must be"):
        Settings.load(env={}, retention_years=-1)


def test_cli_erase_asks_first_then_prints_the_counts(
        settings: Settings, ham_dir: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    database = init_database(settings)
    nurse = add_operator(database, "nurse", "staff")
    store = StationStore(database)
    patient = store.create_patient("P-CLI-0001", actor_id=nurse).id
    visit = store.open_visit(patient, operator_id=nurse).id
    when = dt.datetime(2025, 5, 1, tzinfo=dt.UTC)
    for path in ham_images(ham_dir, 2, skip=2230):
        _capture(store, visit, path.read_bytes(), nurse, when)
    database.dispose()
    monkeypatch.setenv("SKINSTATION_HOME", str(settings.home))

    monkeypatch.setattr("sys.stdin", io.StringIO("no\n"))
    assert main(["patient", "erase", str(patient), "--reason", "patient_request"]) == 1
    out = capsys.readouterr().out
    assert out.startswith(f"patient {patient} (P-CLI-0001): 1 visit(s), 2 capture(s) with their "
                          "images, labels and predictions will be erased here and on the "
                          "engine. This cannot be undone.\n")
    assert out.endswith("nothing erased\n")
    database = init_database(settings)
    assert _counts(database)["captures"] == 2 and _files(database) == 2
    database.dispose()

    monkeypatch.setattr("sys.stdin", io.StringIO("erase\n"))
    assert main(["patient", "erase", str(patient), "--reason", "patient_request"]) == 0
    assert capsys.readouterr().out.endswith(  # after the prompt, on its line
        f"type 'erase' to go on: erased patient {patient} (patient_request): 1 visit(s), 2 "
        "capture(s), 2 prediction(s), 2 label(s), 0 engine review(s), 2 outbox entries, 2 image "
        "file(s); erasure 1 goes to the engine on the next sync\n")
    database = init_database(settings)
    assert _counts(database) == {"patients": 0, "visits": 0, "captures": 0, "predictions": 0,
                                 "labels": 0, "engine_reviews": 0, "outbox": 0, "erasures": 1}
    assert _files(database) == 0
    with database.transaction() as session:
        assert session.scalar(select(func.count()).select_from(AuditEvent).where(
            AuditEvent.action == "patient.erased", AuditEvent.actor_id.is_(None))) == 1
    database.dispose()

    assert main(["patient", "erase", str(patient), "--reason", "patient_request", "--yes"]) == 1
    assert capsys.readouterr().err == f"error: patient {patient} does not exist\n"
    with pytest.raises(SystemExit) as refused:
        main(["patient", "erase", "1", "--reason", "because"])
    assert refused.value.code == 2
    assert "invalid choice: 'because'" in capsys.readouterr().err


def test_model_card_shows_the_data_fingerprint_and_the_synced_cases() -> None:
    fingerprint = "ab" * 32 + ":" + "cd" * 32
    metadata = ModelMetadata(model_version="retrain-7", architecture="mobilenet_v2",
                             classes=["nv", "mel"], taxonomy={}, preprocess={},
                             data_fingerprint=fingerprint, training={"extra_records": 2})
    card = render_model_card(metadata, 1000, "rerun").replace("\n  ", " ")
    assert (f"training data fingerprint `{fingerprint}`, including 2 synced case(s) reviewed on "
            "the engine (a case erased later stays recorded as seen by this model).") in card
    bare = ModelMetadata(model_version="old", architecture="mobilenet_v2", classes=["nv"],
                         taxonomy={}, preprocess={})
    assert "no training data fingerprint recorded." in render_model_card(bare, 1, "rerun")
