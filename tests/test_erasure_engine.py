"""Erasure on the engine, against a real engine process over HTTPS, on SQLite and PostgreSQL:
a station's erasure goes up first in the next sync round and the engine deletes the patient's
captures, image files, predictions, reviews, sessions and patient row (only that station's),
records the model versions that trained on them, refuses the erased uids from then on, and the
station forgets the pseudonym once confirmed; an administrator's erasure does the same on the
engine; retraining no longer selects the erased cases and a job that listed them skips them;
the worker's daily retention erases only old captures."""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, select, text
from sqlalchemy.exc import DBAPIError

from skinstation.core.timeutil import utc_now
from skinstation.engine.accounts import service as accounts
from skinstation.engine.audit.models import AuditEvent as EngineAudit
from skinstation.engine.database import EngineDatabase, open_engine_database
from skinstation.engine.ingest import service as ingest
from skinstation.engine.ingest.models import Capture as EngineCapture
from skinstation.engine.ingest.models import ExamSession
from skinstation.engine.ingest.models import Patient as EnginePatient
from skinstation.engine.models import signing
from skinstation.engine.models.models import ModelVersion
from skinstation.engine.patients.models import ErasedCapture
from skinstation.engine.patients.models import Erasure as EngineErasure
from skinstation.engine.patients.service import apply_retention
from skinstation.engine.retraining import jobs
from skinstation.engine.retraining.cases import claim_cases
from skinstation.engine.retraining.models import TrainingCase
from skinstation.engine.retraining.service import reviewed_cases
from skinstation.engine.retraining.worker import Worker
from skinstation.engine.review import service as review
from skinstation.engine.review.models import Review
from skinstation.engine.stations import service as stations
from skinstation.settings import Settings
from skinstation.storage import Capture, SyncRecords
from skinstation.storage.erasure import erase_patient
from skinstation.storage.models import AuditEvent, Erasure, OutboxEntry
from skinstation.sync.client import EngineClient, EngineRejectedError
from skinstation.sync.credentials import CredentialStore
from skinstation.sync.runner import SyncRunner, enroll_station
from skinstation.training.sources import Record
from tests.test_engine_helpers import (
    ADMIN_PASSWORD,
    DERM_PASSWORD,
    EngineUnderTest,
    Station,
    add_capture,
    engine_database_url,
    file_keyring,
    ham_images,
    make_station,
    running_engine,
    station_settings,
)
from tests.test_storage_helpers import BACKENDS


@pytest.fixture(scope="module", params=BACKENDS)
def engine(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory,
           data_dir: Path) -> Iterator[EngineUnderTest]:
    folder = tmp_path_factory.mktemp(f"erasure-engine-{request.param}")
    with running_engine(folder, data_dir, request.param) as running:
        yield running


_IMAGES = iter(range(3000, 6000, 10))


def _images(engine: EngineUnderTest, count: int) -> list[Path]:
    return ham_images(Path(engine.settings.data_dir) / "ham10000", count, skip=next(_IMAGES))


def _station(engine: EngineUnderTest, tmp_path: Path, name: str,
             pseudonym: str) -> tuple[Station, SyncRunner, int, str]:
    """An enrolled station whose patient ``pseudonym`` has 2 captures, ``PSN-KEEP-<name>`` 1."""
    settings = station_settings(tmp_path, engine.url, engine.tls, name=name)
    credentials = CredentialStore(settings.station_id, file_keyring(tmp_path / "keyring.cfg"))
    admin = engine.login("admin", ADMIN_PASSWORD)
    enroll_station(settings, engine.enrollment_code(admin, name), credentials)
    station = make_station(settings, pseudonym)
    first, second, third = _images(engine, 3)
    add_capture(station, first)
    add_capture(station, second, minutes=1)
    kept = station.store.create_patient(f"PSN-KEEP-{name}", actor_id=station.operator_id)
    other = Station(settings, station.database, station.store, station.operator_id,
                    station.store.open_visit(kept.id, operator_id=station.operator_id).id)
    add_capture(other, third, minutes=2)
    runner = SyncRunner(settings, station.database, credentials=credentials)
    assert runner.sync_once().confirmed == 3
    credential = credentials.load()
    return station, runner, credential.station_id, credential.token


def _uids(station: Station) -> list[str]:
    with station.database.transaction() as session:
        return list(session.scalars(select(Capture.uid).order_by(Capture.id)))


def _engine_ids(engine: EngineUnderTest, uids: list[str]) -> list[int]:
    with engine.db.transaction() as session:
        return [session.scalar(select(EngineCapture.id).where(EngineCapture.uid == uid))
                for uid in uids]


def _on_engine(engine: EngineUnderTest, station_id: int) -> tuple[list[str], int, int]:
    """(capture uids, sessions, patients) the engine holds for a station."""
    with engine.db.transaction() as session:
        uids = list(session.scalars(select(EngineCapture.uid).where(
            EngineCapture.station_id == station_id).order_by(EngineCapture.id)))
        sessions = len(session.scalars(select(ExamSession.id).where(
            ExamSession.station_id == station_id)).all())
        patients = len(session.scalars(select(EnginePatient.id).where(
            EnginePatient.station_id == station_id)).all())
    return uids, sessions, patients


def _refs(engine: EngineUnderTest, uids: list[str]) -> list[Path]:
    with engine.db.transaction() as session:
        refs = session.scalars(select(EngineCapture.image_ref).where(
            EngineCapture.uid.in_(uids)).order_by(EngineCapture.id))
        return [engine.db.images.path_for(ref) for ref in refs]


def _audit(db: EngineDatabase, action: str) -> list[tuple[str, str | None, dict]]:
    with db.transaction() as session:
        rows = session.scalars(select(EngineAudit).where(EngineAudit.action == action)
                               .order_by(EngineAudit.id))
        return [(row.actor, row.entity_type, dict(row.detail)) for row in rows]


def _dump(db_engine: Engine, table: str) -> str:
    with db_engine.connect() as connection:
        return " ".join(str(tuple(row))
                        for row in connection.execute(text(f"SELECT * FROM {table}")))


def _dermatologist(engine: EngineUnderTest) -> accounts.AccountPrincipal:
    return accounts.authenticate(engine.db, engine.login("drlee", DERM_PASSWORD))


def _records(uids: list[str]) -> list[Record]:
    return [Record(Path("/nonexistent.png"), f"engine-{uid}", "nv", uid) for uid in uids]


def test_a_sync_round_erases_the_patient_on_the_engine_before_any_upload(
        engine: EngineUnderTest, tmp_path: Path) -> None:
    pseudonym = f"PSN-SYNC-{engine.db.engine.dialect.name[:4]}-4417"
    station, runner, station_id, token = _station(engine, tmp_path, "st-erase", pseudonym)
    a0, a1, kept = _uids(station)
    ids = _engine_ids(engine, [a0, a1, kept])
    derm = _dermatologist(engine)
    review.submit_review(engine.db, derm, ids[0], "correct", code="mel")
    review.submit_review(engine.db, derm, ids[2], "confirm")
    job = jobs.create_job(engine.db, actor="test")
    assert len(claim_cases(engine.db, job.job_id, _records([a0, kept]), print)) == 2
    version = f"retrain-erasure-{station_id}"
    with engine.db.transaction() as session:
        session.add(ModelVersion(
            version=version, file_ref="x.safetensors", file_sha256="0" * 64,
            content_sha256="0" * 64, file_size=1, status="rejected", parent_version=None,
            data_fingerprint="f", claimed_metrics={}, gate_metrics=None, report={},
            job_id=job.job_id, created_by="test", created_at=utc_now()))
    cache = engine.db.paths.home / "cache" / "prepared-0123.npy"  # what training left
    cache.parent.mkdir(parents=True, exist_ok=True)
    cache.write_bytes(b"prepared pixels")
    erased_files, kept_files = _refs(engine, [a0, a1]), _refs(engine, [kept])
    assert all(path.is_file() for path in erased_files + kept_files)
    pending = add_capture(station, _images(engine, 1)[0], minutes=3)  # not uploaded yet
    records = SyncRecords(station.database)
    uploads = [records.upload_of(capture_id) for capture_id in (1, pending.id)]

    report = erase_patient(station.database, 1, actor_id=None, reason="patient_request")
    assert (report.counts.captures, report.counts.outbox) == (3, 3)
    status = runner.sync_once()
    assert (status.state, status.queue_length, status.confirmed) == ("idle", 0, 1)

    assert _on_engine(engine, station_id) == ([kept], 1, 1)
    assert [path.is_file() for path in erased_files + kept_files] == [False, False, True]
    with engine.db.transaction() as session:
        assert session.scalars(select(Review.capture_id).where(
            Review.capture_id.in_(ids))).all() == [ids[2]]
        cases = dict(session.execute(select(TrainingCase.capture_uid, TrainingCase.erased_at)
                                     .where(TrainingCase.job_id == job.job_id)).all())
        assert sorted(uid for uid, when in cases.items() if when is not None) == [a0]
        assert cases[kept] is None
        tombstones = set(session.scalars(select(ErasedCapture.uid)))
        assert {a0, a1, pending.uid} <= tombstones and kept not in tombstones
    assert not cache.exists()
    erased = [row for row in _audit(engine.db, "patient.erased")
              if row[0] == f"station:{station_id}"]
    assert erased == [(f"station:{station_id}", "erasure", {
        "reason": "patient_request", "patients": 1, "sessions": 1, "captures": 2,
        "predictions": 2, "reviews": 1, "image_files": 2, "model_versions": [version],
        "training_jobs": [job.job_id]})]
    assert pseudonym not in _dump(engine.db.engine, "audit_log")

    with station.database.transaction() as session:
        row = session.get(Erasure, report.erasure_id)
        assert (row.state, row.pseudonym, row.confirmed_at is not None) == (
            "confirmed", None, True)
        confirmed = session.scalars(select(AuditEvent.detail).where(
            AuditEvent.action == "erasure.confirmed")).all()
        assert confirmed == [{"engine_captures": 2, "engine_sessions": 1, "engine_patients": 1,
                              "model_versions": [version]}]
        assert session.scalars(select(OutboxEntry.state)).all() == ["confirmed"]
    assert pseudonym not in _dump(station.database.engine, "audit_log")
    assert pseudonym not in _dump(station.database.engine, "erasures")

    client = EngineClient(station.settings.sync, token=token)
    for upload in uploads:  # an erased capture, and one erased before it ever went up
        with pytest.raises(EngineRejectedError) as refused:
            client.upload_capture(upload.document, upload.image)
        assert (refused.value.status, refused.value.detail) == (
            409, f"capture {upload.document.capture.uid} was erased on the engine; it is not "
                 "stored again")
    client.close()
    assert _on_engine(engine, station_id) == ([kept], 1, 1)

    notice = {"erasure_id": report.erasure_id, "reason": "patient_request",
              "pseudonym": pseudonym, "capture_uids": [a0, a1, pending.uid]}
    with engine.db.transaction() as session:
        first = session.scalar(select(EngineErasure.id).where(
            EngineErasure.station_id == station_id))
    again = engine.post("/sync/erasures", token, json=notice)  # sent again: the same answer
    assert (again.status_code, again.json()) == (200, {
        "erasure_id": report.erasure_id, "engine_erasure_id": first, "patients": 1,
        "sessions": 1, "captures": 2, "predictions": 2, "reviews": 1, "image_files": 2,
        "model_versions": [version]})
    intruder = _station(engine, tmp_path / "other", "st-intruder", "PSN-OTHER-0001")
    answer = engine.post("/sync/erasures", intruder[3], json={
        "erasure_id": 1, "reason": "patient_request", "pseudonym": "PSN-KEEP-st-erase",
        "capture_uids": [kept]})
    assert answer.status_code == 200 and answer.json()["captures"] == 0
    assert answer.json()["patients"] == 0
    assert _on_engine(engine, station_id) == ([kept], 1, 1)
    assert engine.post("/sync/erasures", token, json={**notice, "reason": "because"}
                       ).status_code == 422
    assert engine.post("/sync/erasures", None, json=notice).status_code == 401


def test_admin_erases_a_patient_and_retraining_no_longer_selects_the_cases(
        engine: EngineUnderTest, tmp_path: Path) -> None:
    pseudonym = f"PSN-ADMIN-{engine.db.engine.dialect.name[:4]}-5521"
    station, _, station_id, _ = _station(engine, tmp_path, "st-admin", pseudonym)
    a0, a1, kept = _uids(station)
    ids = _engine_ids(engine, [a0, a1, kept])
    derm = _dermatologist(engine)
    review.submit_review(engine.db, derm, ids[0], "correct", code="mel")
    review.submit_review(engine.db, derm, ids[2], "confirm")

    def selected() -> list[str]:
        cases, _ = reviewed_cases(engine.db, [])
        return sorted(r.image_id.removeprefix("engine-") for r in cases
                      if r.image_id.removeprefix("engine-") in {a0, a1, kept})

    assert selected() == sorted([a0, kept])
    listed = _records([a0, kept])
    job = jobs.create_job(engine.db, actor="test")  # queued, its cases listed
    with engine.db.transaction() as session:
        patient_id = session.scalar(select(ExamSession.patient_id).join(
            EngineCapture, EngineCapture.session_id == ExamSession.id).where(
            EngineCapture.uid == a0))
    files = _refs(engine, [a0, a1, kept])
    admin = engine.login("admin", ADMIN_PASSWORD)
    path = f"/admin/patients/{patient_id}/erase"
    assert engine.post(path, engine.login("drlee", DERM_PASSWORD),
                       json={"reason": "patient_request"}).status_code == 403
    for body in ({"reason": "retention"}, {"reason": "she asked"}, {}):
        assert engine.post(path, admin, json=body).status_code == 422
    missing = engine.post("/admin/patients/999999/erase", admin,
                          json={"reason": "patient_request"})
    assert (missing.status_code, missing.json()) == (
        404, {"detail": "patient 999999 does not exist"})
    assert _on_engine(engine, station_id) == ([a0, a1, kept], 2, 2)

    answer = engine.post(path, admin, json={"reason": "entered_in_error"})
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body == {"erasure_id": 0, "engine_erasure_id": body["engine_erasure_id"],
                    "patients": 1, "sessions": 1, "captures": 2, "predictions": 2, "reviews": 1,
                    "image_files": 2, "model_versions": []}
    assert _on_engine(engine, station_id) == ([kept], 1, 1)
    assert [path.is_file() for path in files] == [False, False, True]
    assert selected() == [kept]
    logged: list[str] = []
    assert [r.image_id for r in claim_cases(engine.db, job.job_id, listed, logged.append)] == [
        f"engine-{kept}"]
    assert logged == ["1 listed case(s) were erased before training; skipped"]
    with engine.db.transaction() as session:
        assert session.scalars(select(TrainingCase.capture_uid).where(
            TrainingCase.job_id == job.job_id)).all() == [kept]
    assert [(actor, kind, detail["captures"]) for actor, kind, detail
            in _audit(engine.db, "patient.erased") if actor == "account:admin"][-1:] == [
        ("account:admin", "erasure", 2)]
    assert pseudonym not in _dump(engine.db.engine, "audit_log")
    for statement in ("DELETE FROM reviews", "DELETE FROM audit_log"):
        with pytest.raises(DBAPIError, match="is append-only"), \
                engine.db.engine.begin() as connection:
            connection.execute(text(statement))
    assert len(_uids(station)) == 3  # the station keeps its copy: erase it there too


@pytest.mark.parametrize("backend", BACKENDS)
def test_the_worker_erases_captures_past_the_engine_retention(
        settings: Settings, backend: str) -> None:
    now = utc_now()
    with engine_database_url(backend) as url:
        db = open_engine_database(settings.replace(engine={"database_url": url,
                                                           "retention_years": 2}))
        try:
            old, new = _ingest(db, settings, now)
            assert apply_retention(db, now, years=0) is None
            logged: list[str] = []
            assert Worker(db, log=logged.append).run(threading.Event(), until_idle=True) == 0
            assert logged == ["retention erased 1 capture(s) older than 2 year(s)"]
            with db.transaction() as session:
                assert session.scalars(select(EngineCapture.uid)).all() == [new]
                assert session.scalars(select(ErasedCapture.uid)).all() == [old]
            assert len(list(db.images.files())) == 1
            rows = [(actor, kind, detail["captures"], detail["sessions"], detail["reason"])
                    for actor, kind, detail in _audit(db, "captures.erased")]
            assert rows == [("engine:retention", "erasure", 1, 0, "retention")]
            assert Worker(db, log=logged.append).run(threading.Event(), until_idle=True) == 0
            assert len(_audit(db, "captures.erased")) == 1 and len(logged) == 1
        finally:
            db.dispose()


def _ingest(db: EngineDatabase, settings: Settings, now: dt.datetime) -> tuple[str, str]:
    """One capture taken three years ago and one last month, stored on the engine."""
    signing.ensure_signing_key(db, actor="test")
    enrollment = stations.enroll(db, stations.create_enrollment_code(db, "R", actor="t").code,
                                 "r")
    principal = stations.authenticate(db, enrollment.token)
    station = make_station(settings.replace(home=settings.home / "station"))
    records = SyncRecords(station.database)
    uids = []
    for when, image in zip((now - dt.timedelta(days=3 * 366), now - dt.timedelta(days=30)),
                           ham_images(Path(settings.data_dir) / "ham10000", 2, skip=2300),
                           strict=True):
        capture = station.store.save_capture(
            station.visit_id, image.read_bytes(), band="white", body_site="back",
            device_id="d-1", operator_id=station.operator_id, access_time=when,
            capture_time=when)
        upload = records.upload_of(capture.id)
        ingest.store_capture(db, principal, upload.document, upload.image)
        uids.append(capture.uid)
    station.database.dispose()
    return uids[0], uids[1]


