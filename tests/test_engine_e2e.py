"""End to end with real processes on 127.0.0.1: enroll → capture → sync → dermatologist review
on the engine → review at the station → retraining job in a worker process → gated promotion →
signed model at the station, used for the next classification."""

from __future__ import annotations

import csv
import datetime as dt
import os
import subprocess
import sys
from pathlib import Path

from skinstation.auth import Role
from skinstation.camera import SimulatedDermatoscope
from skinstation.engine.models import service as registry
from skinstation.engine.models.models import ModelStatus
from skinstation.services.station import StationService
from skinstation.storage import ReviewState
from skinstation.sync.credentials import CredentialStore
from skinstation.sync.runner import SyncRunner, enroll_station
from tests.conftest import REPO_ROOT
from tests.test_engine_helpers import (
    ADMIN_PASSWORD,
    DERM_PASSWORD,
    file_keyring,
    ham_images,
    make_tls,
    start_engine,
    station_settings,
    tiny_engine_options,
)

PASSWORD = "station-passphrase-1"


def _locked_test_image(tiny_model: Path, tiny_manifest: Path) -> Path:
    with open(tiny_model.parent / "split.csv", newline="") as stream:
        test_ids = {row["image_id"] for row in csv.DictReader(stream) if row["split"] == "test"}
    with open(tiny_manifest, newline="") as stream:
        return next(Path(row["image"]) for row in csv.DictReader(stream)
                    if row["image"] in test_ids)


def test_enroll_capture_sync_review_retrain_promote_and_classify(
    tmp_path: Path, data_dir: Path, ham_dir: Path, tiny_manifest: Path, tiny_model: Path
) -> None:
    # A 7-image locked test set cannot tell models apart: the e2e gate allows any drop, so the
    # gate path (evaluation, report, signed deployment) runs and promotes. Rejection by a
    # strict gate is covered by the DDP retraining test.
    options = {**tiny_engine_options(tiny_manifest, tiny_model),
               "max_balanced_accuracy_drop": 1.0, "max_sensitivity_drop": 1.0}
    engine = start_engine(tmp_path, data_dir, make_tls(tmp_path / "tls"), options=options)
    try:
        registry.register_model(engine.db, tiny_model, status=ModelStatus.PROMOTED, actor="test")
        registry.deploy(engine.db, "tiny-test-model", action="initial", actor="test",
                        reason="initial model")
        admin = engine.login("admin", ADMIN_PASSWORD)

        # -- the station: enroll, capture, classify, label ---------------------------------
        settings = station_settings(tmp_path, engine.url, engine.tls, name="clinic-1")
        settings = settings.replace(model_path=tiny_model)
        service = StationService(settings)
        service.create_first_admin("admin", "Admin", PASSWORD)
        station_admin = service.login("admin", PASSWORD)
        service.create_operator(station_admin, "nurse", "Nurse", Role.STAFF, PASSWORD)
        credentials = CredentialStore(settings.station_id, file_keyring(tmp_path / "kr.cfg"))
        enroll_station(settings, engine.enrollment_code(admin, "Clinic 1"), credentials)
        runner = SyncRunner(settings, service.database, credentials=credentials,
                            installer=lambda path, sha: service.models.install(path, sha).version)

        nurse = service.login("nurse", PASSWORD)
        patient = service.find_or_create_patient(nurse, "P-2001")
        visit = service.start_visit(nurse, patient.id)
        images = [*ham_images(ham_dir, 3, skip=3000), _locked_test_image(tiny_model,
                                                                         tiny_manifest)]
        saved = []
        with SimulatedDermatoscope(images, fps=0, loop=False) as source:
            for _ in images:
                frame = source.read()
                prediction = service.classify(frame.pixels)
                assert prediction.model_version == "tiny-test-model"
                capture = service.save_capture(nurse, visit.id, frame, band="white",
                                               body_site="back",
                                               access_time=dt.datetime.now(dt.UTC),
                                               prediction=prediction).capture
                service.label(nurse, capture.id, "nv")
                saved.append(capture)

        status = runner.sync_once()
        assert (status.state, status.queue_length, status.confirmed) == ("idle", 0, 4)
        assert status.model_version == "tiny-test-model" and status.model_deployment == 1

        # -- the dermatologist reviews on the engine ---------------------------------------
        derm = engine.login("drlee", DERM_PASSWORD)
        queue = {item["uid"]: item for item in engine.get("/review/queue", derm).json()}
        assert set(queue) == {c.uid for c in saved}
        corrections = {saved[0].uid: "mel", saved[1].uid: "bkl", saved[3].uid: "bcc"}
        for capture in saved:
            body = ({"action": "correct", "code": corrections[capture.uid]}
                    if capture.uid in corrections else {"action": "confirm"})
            answer = engine.post(f"/review/captures/{queue[capture.uid]['capture_id']}", derm,
                                 json=body)
            assert answer.status_code == 201, answer.text
        assert engine.get("/review/queue", derm).json() == []

        # -- the reviews reach the station ---------------------------------------------------
        assert runner.sync_once().state == "idle"
        rows = {r.capture_uid: r for r in service.store.history(actor_id=nurse.operator_id)}
        for capture in saved:
            expected = corrections.get(capture.uid, "nv")
            assert (rows[capture.uid].original_label, rows[capture.uid].final_label,
                    rows[capture.uid].review_state) == ("nv", expected, ReviewState.REVIEWED)

        # -- retraining in a separate worker process, behind the gate -----------------------
        job = engine.post("/admin/training-jobs", admin, json={}).json()
        assert job["state"] == "queued"
        env = {**os.environ, "SKINSTATION_CONFIG": str(engine.config),
               **engine.server.env}  # the engine's keyring: the images are encrypted at rest
        worker = subprocess.run(
            [sys.executable, "-m", "skinstation.cli", "engine", "worker", "--once"],
            env=env, cwd=REPO_ROOT, capture_output=True, text=True, timeout=300, check=False)
        assert worker.returncode == 0, worker.stderr[-3000:]
        done = engine.get(f"/admin/training-jobs/{job['job_id']}", admin).json()
        assert (done["state"], done["outcome"], done["attempts"]) == ("succeeded", "promoted", 1)
        report = done["report"]
        assert report["reviewed_cases_used"] == 3
        assert report["reviewed_cases_skipped"] == {
            "same image as a validation/locked-test image": 1}
        assert report["locked_test_images"] == 7 and report["current_version"] == "tiny-test-model"
        assert report["gate"]["promote"] is True
        assert report["gate"]["sensitivity_measure"] == "referral_sensitivity"
        assert set(report["metrics_source"].values()) == {
            "stored in the model file (built on this locked split)"}
        candidate = done["candidate_version"]
        versions = {v["version"]: v for v in engine.get("/admin/models", admin).json()}
        promoted = versions[candidate]
        assert (promoted["status"], promoted["parent_version"], promoted["decided_by"],
                promoted["deployed"]) == ("promoted", "tiny-test-model",
                                          f"gate:job-{job['job_id']}", True)
        assert promoted["data_fingerprint"] != versions["tiny-test-model"]["data_fingerprint"]
        assert promoted["gate_metrics"]["locked_test"]["images"] == 7
        assert "locked_test" not in promoted["claimed_metrics"]  # the file's own, kept apart

        # -- the signed model reaches the station and classifies the next capture -----------
        status = runner.sync_once()
        assert (status.state, status.model_version, status.model_deployment) == (
            "idle", candidate, 2)
        with SimulatedDermatoscope(ham_images(ham_dir, 1, skip=3100), fps=0) as source:
            frame = source.read()
        assert service.classify(frame.pixels).model_version == candidate
        audit = {row["action"] for row in engine.get("/admin/audit", admin).json()}
        assert {"station.enrolled", "capture.received", "review.corrected", "review.confirmed",
                "reviews.pulled", "training_job.succeeded", "model.candidate",
                "model.deployed.promote", "model.downloaded", "station.model_installed"} <= audit
    finally:
        engine.server.stop()
        engine.db.dispose()
