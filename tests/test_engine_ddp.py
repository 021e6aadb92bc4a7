"""Retraining on PyTorch DDP: the worker runs ``torchrun --nproc_per_node=2`` (gloo, CPU); the
strict gate then rejects the candidate, which is kept with its report."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from skinstation.engine import accounts, ingest, jobs, registry, review, signing, stations
from skinstation.engine.database import open_engine_database
from skinstation.engine.payloads import CaptureMetadata
from skinstation.engine.schema import AccountRole, ModelStatus
from skinstation.inference.model_file import load_model_file, save_model_file
from skinstation.settings import Settings
from skinstation.storage import SyncRecords
from tests.conftest import REPO_ROOT
from tests.test_engine_helpers import (
    add_capture,
    ham_images,
    make_station,
    tiny_engine_options,
    write_engine_config,
)

PASSWORD = "derm-passphrase-77"


def test_ddp_retraining_with_two_processes_and_a_rejecting_gate(
    tmp_path: Path, data_dir: Path, ham_dir: Path, tiny_manifest: Path, tiny_model: Path
) -> None:
    # A gate demanding an impossible improvement (drops of -1.0): the candidate is rejected.
    options = {**tiny_engine_options(tiny_manifest, tiny_model), "home": str(tmp_path / "eng"),
               "train_processes": 2, "max_balanced_accuracy_drop": -1.0,
               "max_sensitivity_drop": -1.0, "finetune_epochs": 2}
    config = write_engine_config(tmp_path / "engine.toml", home=tmp_path / "eng",
                                 data_dir=data_dir, engine=options)
    db = open_engine_database(Settings.load(env={}, config_file=config))
    signing.ensure_signing_key(db, actor="test")
    # The current model comes from elsewhere (another split): the job must evaluate it itself.
    metadata, state = load_model_file(tiny_model)
    metadata.model_version = "imported-model"
    # its recipe (inherited by the candidate) uses the trainer's optional techniques
    metadata.training = {**metadata.training, "split": "another-site/split.csv",
                         "class_weighting": "logit_adjusted", "feature_flips": True,
                         "average_last": 2}
    imported = save_model_file(tmp_path / "imported.safetensors", state, metadata)
    registry.register_model(db, tmp_path / "imported.safetensors", status=ModelStatus.PROMOTED,
                            actor="test")
    registry.deploy(db, imported.model_version, action="initial", actor="test", reason="first")

    station_db = make_station(Settings.load(env={}, home=tmp_path / "station"))
    station = stations.authenticate(db, stations.enroll(
        db, stations.create_enrollment_code(db, "A", actor="test").code, "a").token)
    accounts.create_account(db, "drlee", PASSWORD, AccountRole.DERMATOLOGIST, actor="test")
    derm = accounts.authenticate(db, accounts.login(db, "drlee", PASSWORD).token)
    records = SyncRecords(station_db.database)
    for index, (image, code) in enumerate(zip(ham_images(ham_dir, 3, skip=4000),
                                              ("mel", "bcc", "df"), strict=True)):
        upload = records.upload_of(add_capture(station_db, image, minutes=index).id)
        stored = ingest.store_capture(db, station, CaptureMetadata.model_validate(
            upload.metadata), upload.image)
        review.submit_review(db, derm, stored.capture_id, "correct", code)
    job = jobs.create_job(db, actor="test")

    env = {**os.environ, "SKINSTATION_CONFIG": str(config)}
    worker = subprocess.run(
        [sys.executable, "-m", "skinstation.cli", "engine", "worker", "--once"], env=env,
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=300, check=False)
    assert worker.returncode == 0, worker.stderr[-4000:]
    assert "[rank 0/2]" in worker.stderr and "[rank 1/2]" in worker.stderr
    assert "average of the last 2 epochs: val balanced accuracy" in worker.stderr

    done = jobs.get_job(db, job.job_id)
    assert (done.state, done.outcome) == ("succeeded", "rejected")
    gate = done.report["gate"]
    assert gate["promote"] is False and len(gate["reasons"]) == 2
    assert gate["reasons"][0].startswith("balanced accuracy")
    assert done.report["train_processes"] == 2 and done.report["reviewed_cases_used"] == 3
    assert done.report["metrics_source"] == {
        "candidate": "stored in the model file (built on this locked split)",
        "current": "evaluated by this job"}
    assert done.report["current"]["images"] == done.report["candidate"]["images"] == 7

    candidate = {v.version: v for v in registry.list_versions(db)}[done.candidate_version]
    assert (candidate.status, candidate.deployed, candidate.decided_by) == (
        "rejected", False, f"gate:job-{job.job_id}")
    assert candidate.report["gate"]["reasons"] == gate["reasons"]
    current = registry.current(db).manifest
    assert (current["version"], current["deployment"]) == ("imported-model", 1)

    metadata, _ = load_model_file(registry.model_path(db, done.candidate_version))
    distributed = metadata.training["distributed"]
    assert (distributed["backend"], distributed["world_size"]) == ("gloo", 2)
    assert sum(distributed["images_per_rank"]) == 28 + 3  # training split + reviewed cases
    assert len(set(distributed["weight_checksums"])) == 1  # gradients were all-reduced
    assert distributed["selected"] in ("head", "fine-tune epoch 1", "fine-tune epoch 2",
                                       "average of the last 2 epochs")  # best on validation
    assert [h["phase"] for h in distributed["history"]] == (
        ["head"] * 3 + ["fine-tune"] * 2 + [2.0])  # 2.0: the weight average's validation
    assert {k: metadata.training[k] for k in ("class_weighting", "feature_flips",
                                              "average_last")} == {
        "class_weighting": "logit_adjusted", "feature_flips": True, "average_last": 2}
    assert metadata.parent_version == "imported-model" and metadata.metrics["test"]["images"] == 7
    db.dispose()
