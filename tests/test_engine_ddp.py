"""Retraining on PyTorch DDP: the worker runs ``torchrun --nproc_per_node=2`` (gloo, CPU), each
rank running the learning unit's own loop (warm start from the deployed model); the strict
gate then rejects the candidate, which is kept with its report. That the 2-process loop
equals the single-process one is tested in ``test_training_loop``."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from skinstation.core.crypto import ENGINE_KEYS
from skinstation.engine.accounts import service as accounts
from skinstation.engine.accounts.models import AccountRole
from skinstation.engine.database import open_engine_database
from skinstation.engine.ingest import service as ingest
from skinstation.engine.models import service as registry
from skinstation.engine.models import signing
from skinstation.engine.models.models import ModelStatus
from skinstation.engine.retraining import jobs
from skinstation.engine.review import service as review
from skinstation.engine.stations import service as stations
from skinstation.inference.model_file import load_model_file, save_model_file
from skinstation.protocol.uploads import CaptureMetadata
from skinstation.settings import Settings
from skinstation.storage import SyncRecords
from skinstation.training.sources import load_manifest
from skinstation.training.splits import load_or_make_split, load_split
from tests.conftest import REPO_ROOT, write_manifest
from tests.test_engine_helpers import (
    add_capture,
    file_keyring,
    file_keyring_env,
    ham_images,
    make_station,
    share_data_keys,
    tiny_engine_options,
    write_engine_config,
)

PASSWORD = "derm-passphrase-77"


def test_ddp_retraining_with_two_processes_and_a_rejecting_gate(
    tmp_path: Path, data_dir: Path, ham_dir: Path, tiny_manifest: Path, tiny_model: Path
) -> None:
    # A gate demanding an impossible improvement (drops of -1.0): the candidate is rejected.
    # other clinics: further real images (other lesions) with their own committed-style split
    other = write_manifest(tmp_path / "other" / "other.csv", ham_dir, per_class=7, offset=6)
    other_records, _ = load_manifest(other)
    load_or_make_split(tmp_path / "other" / "split.csv", other_records)
    options = {**tiny_engine_options(tiny_manifest, tiny_model), "home": str(tmp_path / "eng"),
               "train_processes": 2, "max_balanced_accuracy_drop": -1.0,
               "max_sensitivity_drop": -1.0, "full_epochs": 2,
               "other_sources": [f"manifest:{other}={tmp_path / 'other' / 'split.csv'}"]}
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

    ring = tmp_path / "engine-keyring.enc"  # the worker reads the images encrypted here
    share_data_keys(ENGINE_KEYS, file_keyring(ring))
    env = {**os.environ, "SKINSTATION_CONFIG": str(config), **file_keyring_env(ring)}
    worker = subprocess.run(
        [sys.executable, "-m", "skinstation.cli", "engine", "worker", "--once"], env=env,
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=300, check=False)
    assert worker.returncode == 0, worker.stderr[-4000:]
    assert "[rank 0/2] training with 2 processes, 1 thread(s) each" in worker.stderr
    assert "[rank 1/2] training with 2 processes, 1 thread(s) each" in worker.stderr
    assert "[rank 0/2] [full fine-tune] epoch 2: loss" in worker.stderr
    assert "[head]" not in worker.stderr  # a warm start: no cached-feature phases

    done = jobs.get_job(db, job.job_id)
    assert (done.state, done.outcome) == ("succeeded", "rejected")
    gate = done.report["gate"]
    assert gate["promote"] is False and len(gate["reasons"]) == 4
    assert gate["reasons"][0].startswith("balanced accuracy")
    assert gate["reasons"][2].startswith("other clinics: balanced accuracy")
    others = done.report["other_clinics"]
    assert others["images"] == others["candidate"]["images"] > 0
    assert others["metrics_source"] == {
        "candidate": "stored in the model file (built on this locked split)",
        "current": "evaluated by this job"}
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
    assert metadata.training["processes"] == 2
    assert metadata.training["init_model"] == "imported-model"  # warm start
    other_train = len(load_split(tmp_path / "other" / "split.csv", other_records).select(
        other_records, "train"))
    # base training split + the other clinics' training part + reviewed cases
    assert metadata.training["train_images"] == 28 + other_train + 3
    assert [h["phase"] for h in metadata.training["history"]] == [3.0] * 3  # start + 2 epochs
    assert {k: metadata.training[k] for k in ("class_weighting", "feature_flips",
                                              "average_last")} == {
        "class_weighting": "logit_adjusted", "feature_flips": True, "average_last": 2}
    assert len(metadata.training_log_prior) == 7  # logit-adjusted: the prior is stored
    assert done.report["warm_start"] is True and done.report["full_epochs"] == 2
    assert metadata.parent_version == "imported-model" and metadata.metrics["test"]["images"] == 7
    db.dispose()
