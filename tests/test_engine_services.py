"""Engine services in-process on a real SQLite file: accounts, enrollment, signing, registry,
the promotion gate, jobs, ingest checks and review rules."""

from __future__ import annotations

import hashlib
import json
import os
import stat
import time
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select, text
from sqlalchemy.exc import DBAPIError

from skinstation.core.timeutil import utc_now
from skinstation.engine.accounts import service as accounts
from skinstation.engine.accounts.models import Account, AccountRole, ApiSession
from skinstation.engine.database import EngineDatabase, open_engine_database
from skinstation.engine.errors import (
    ConflictError,
    ForbiddenError,
    InvalidError,
    LockedError,
    UnauthorizedError,
)
from skinstation.engine.ingest import service as ingest
from skinstation.engine.ingest.models import Capture
from skinstation.engine.models import service as registry
from skinstation.engine.models import signing
from skinstation.engine.models.models import ModelStatus
from skinstation.engine.retraining import jobs
from skinstation.engine.retraining.gate import GateMetrics, decide
from skinstation.engine.review import service as review
from skinstation.engine.stations import service as stations
from skinstation.engine.stations.models import Station
from skinstation.protocol.manifest import ManifestError, verify_manifest
from skinstation.protocol.uploads import CaptureMetadata
from skinstation.settings import Settings
from skinstation.storage import SyncRecords
from tests.test_engine_helpers import add_capture, ham_images, make_station

PASSWORD = "a-long-passphrase-9"


@pytest.fixture()
def db(settings: Settings) -> EngineDatabase:
    database = open_engine_database(settings)
    signing.ensure_signing_key(database, actor="test")
    yield database
    database.dispose()


def _all_text(db: EngineDatabase) -> str:
    """Every value of every engine table, as one string (to look for leaked secrets)."""
    with db.engine.connect() as connection:
        tables = [r[0] for r in connection.execute(text(
            "SELECT name FROM sqlite_master WHERE type = 'table'"))]
        return " ".join(str(row) for t in tables for row in connection.execute(
            text(f"SELECT * FROM {t}")))


# -- accounts --------------------------------------------------------------------------------

def test_accounts_hash_passwords_store_token_digests_and_lock_out(db: EngineDatabase) -> None:
    created = accounts.create_account(db, "DrKim", PASSWORD, AccountRole.DERMATOLOGIST,
                                      display_name="Dr Kim", actor="test")
    assert (created.username, created.role) == ("drkim", AccountRole.DERMATOLOGIST)
    with db.transaction() as session:
        stored = session.scalar(select(Account.password_hash))
    assert stored.startswith("$argon2id$") and PASSWORD not in stored
    with pytest.raises(ConflictError, match="account 'drkim' already exists"):
        accounts.create_account(db, "drkim", PASSWORD, AccountRole.ADMIN, actor="test")
    with pytest.raises(InvalidError, match="at least 10 characters"):
        accounts.create_account(db, "short", "abc", AccountRole.ADMIN, actor="test")

    login = accounts.login(db, "drkim", PASSWORD)
    assert accounts.authenticate(db, login.token).username == "drkim"
    with db.transaction() as session:
        assert session.scalar(select(ApiSession.token_hash)) == hashlib.sha256(
            login.token.encode()).hexdigest()
    assert login.token not in _all_text(db)
    accounts.logout(db, login.token)
    with pytest.raises(UnauthorizedError, match="invalid or expired login token"):
        accounts.authenticate(db, login.token)

    for _ in range(db.settings.auth.max_failed_logins):
        with pytest.raises(UnauthorizedError, match="wrong username or password"):
            accounts.login(db, "drkim", "not-the-password")
    with pytest.raises(LockedError, match="account locked after 5 failed logins until"):
        accounts.login(db, "drkim", PASSWORD)
    with pytest.raises(UnauthorizedError, match="wrong username or password"):
        accounts.login(db, "nobody", PASSWORD)


# -- enrollment ------------------------------------------------------------------------------

def test_enrollment_code_is_one_time_and_tokens_are_revocable(db: EngineDatabase) -> None:
    issued = stations.create_enrollment_code(db, "Clinic North", actor="cli:admin")
    assert len(issued.code) == 23 and issued.code.count("-") == 3
    enrollment = stations.enroll(db, issued.code.lower().replace("-", " "), "station-7")
    public, key_id = signing.active_public_key(db)
    assert (enrollment.station_name, enrollment.public_key, enrollment.key_id) == (
        "Clinic North", public, key_id)
    with pytest.raises(UnauthorizedError, match="unknown, already used or expired"):
        stations.enroll(db, issued.code, "station-8")
    principal = stations.authenticate(db, enrollment.token)
    assert (principal.name, principal.station_ref) == ("Clinic North", "station-7")
    secrets_seen = _all_text(db)
    assert enrollment.token not in secrets_seen and issued.code not in secrets_seen

    stations.revoke(db, principal.station_id, actor="cli:admin")
    with pytest.raises(UnauthorizedError, match="station credential was revoked"):
        stations.authenticate(db, enrollment.token)
    with pytest.raises(UnauthorizedError, match="invalid station credential"):
        stations.authenticate(db, enrollment.token[:-2] + "xx")


def test_expired_enrollment_code_is_refused(settings: Settings) -> None:
    db = open_engine_database(settings.replace(engine={"enrollment_code_hours": 0.0001}))
    signing.ensure_signing_key(db, actor="test")
    issued = stations.create_enrollment_code(db, "Clinic", actor="test")
    time.sleep(0.5)
    with pytest.raises(UnauthorizedError, match="unknown, already used or expired"):
        stations.enroll(db, issued.code, "station-1")
    with db.transaction() as session:
        assert session.scalar(select(func.count()).select_from(Station)) == 0


# -- signing key and manifests ---------------------------------------------------------------

def test_signing_key_file_is_owner_only_and_unsafe_modes_are_refused(db: EngineDatabase) -> None:
    path = db.paths.signing_key
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    os.chmod(path, 0o644)
    with pytest.raises(signing.SigningKeyError, match="has mode 0644; it must be readable by "
                       "its owner only"):
        signing.load_private_key(path)


def test_manifest_signature_detects_tampering_wrong_keys_and_replays(
    db: EngineDatabase, tiny_model: Path
) -> None:
    registry.register_model(db, tiny_model, status=ModelStatus.PROMOTED, actor="test")
    signed = registry.deploy(db, "tiny-test-model", action="initial", actor="test",
                             reason="first")
    public, _ = signing.active_public_key(db)
    verify_manifest(signed.manifest, signed.signature, public)
    assert signed.manifest["file_sha256"] == hashlib.sha256(tiny_model.read_bytes()).hexdigest()

    tampered = {**signed.manifest, "file_sha256": "0" * 64}
    with pytest.raises(ManifestError, match="invalid signature"):
        verify_manifest(tampered, signed.signature, public)
    other = signing.Ed25519PrivateKey.generate()
    other_public = signing._public_b64(other)
    with pytest.raises(ManifestError, match=r"not the engine key .* pinned at enrollment"):
        verify_manifest(signed.manifest, signed.signature, other_public)
    with pytest.raises(ManifestError, match="deployment 1 is not newer than the installed "
                       "deployment 1"):
        verify_manifest(signed.manifest, signed.signature, public, newer_than=1)


# -- registry --------------------------------------------------------------------------------

def test_registry_deploys_only_promoted_models_and_rolls_back(
    db: EngineDatabase, tiny_model: Path, tmp_path: Path
) -> None:
    registry.register_model(db, tiny_model, status=ModelStatus.PROMOTED, actor="cli:admin")
    registry.deploy(db, "tiny-test-model", action="initial", actor="cli:admin", reason="first")
    with pytest.raises(InvalidError, match="tiny-test-model is the only model ever deployed"):
        registry.rollback(db, actor="cli:admin")

    from skinstation.inference.model_file import load_model_file, save_model_file

    metadata, state = load_model_file(tiny_model)
    metadata.model_version, metadata.parent_version = "tiny-v2", "tiny-test-model"
    second = tmp_path / "v2.safetensors"
    save_model_file(second, state, metadata)
    registry.register_model(db, second, status=ModelStatus.CANDIDATE, actor="gate:job-1")
    with pytest.raises(InvalidError, match="model tiny-v2 is candidate; only promoted"):
        registry.deploy(db, "tiny-v2", action="promote", actor="x", reason="x")
    promoted = registry.promote(db, "tiny-v2", actor="gate:job-1", reason="passed")
    assert (promoted.manifest["deployment"], promoted.manifest["version"]) == (2, "tiny-v2")
    versions = {v.version: v for v in registry.list_versions(db)}
    assert versions["tiny-v2"].parent_version == "tiny-test-model"
    assert versions["tiny-v2"].decided_by == "gate:job-1" and versions["tiny-v2"].deployed

    back = registry.rollback(db, actor="cli:admin", reason="bad field reports")
    assert (back.manifest["deployment"], back.manifest["version"], back.manifest["action"]) == (
        3, "tiny-test-model", "rollback")
    assert registry.current(db).manifest == back.manifest
    with pytest.raises(DBAPIError, match="deployments is append-only"), \
            db.engine.begin() as connection:
        connection.execute(text("UPDATE deployments SET model_version_id = 2"))


# -- gate ------------------------------------------------------------------------------------

def test_gate_uses_balanced_accuracy_and_referral_sensitivity_with_margins() -> None:
    current = GateMetrics(0.60, 0.90, 0.70, 100)
    better = GateMetrics(0.62, 0.91, 0.60, 100)
    decision = decide(better, current, max_balanced_accuracy_drop=0.01, max_sensitivity_drop=0.0)
    assert (decision.promote, decision.sensitivity_measure, decision.reasons) == (
        True, "referral_sensitivity", ())

    within = GateMetrics(0.595, 0.90, 0.70, 100)
    assert decide(within, current, max_balanced_accuracy_drop=0.01,
                  max_sensitivity_drop=0.0).promote
    worse = GateMetrics(0.58, 0.85, 0.99, 100)
    rejected = decide(worse, current, max_balanced_accuracy_drop=0.01, max_sensitivity_drop=0.02)
    assert not rejected.promote
    assert rejected.reasons == (
        "balanced accuracy 0.5800 is below the current model's 0.6000 minus the allowed drop "
        "0.0100 (floor 0.5900)",
        "skin-cancer referral sensitivity 0.8500 is below the current model's 0.9000 minus the "
        "allowed drop 0.0200 (floor 0.8800)",
    )
    no_threshold = GateMetrics(0.61, None, 0.65, 100)
    fallback = decide(no_threshold, current, max_balanced_accuracy_drop=0.01,
                      max_sensitivity_drop=0.0)
    assert (fallback.promote, fallback.sensitivity_measure) == (False, "rule_cancer_sensitivity")
    unmeasurable = decide(GateMetrics(0.7, float("nan"), 0.7, 10), current,
                          max_balanced_accuracy_drop=0.5, max_sensitivity_drop=0.5)
    assert not unmeasurable.promote and "cannot be measured" in unmeasurable.reasons[0]


def test_gate_checks_the_other_clinics_test_set_too() -> None:
    current, better = GateMetrics(0.60, 0.90, 0.70, 100), GateMetrics(0.62, 0.91, 0.60, 100)
    other_current = GateMetrics(0.55, 0.95, 0.50, 40)
    # better on the locked test, but the other clinics lose melanoma referrals: rejected
    other_worse = GateMetrics(0.56, 0.90, 0.50, 40)
    decision = decide(better, current, max_balanced_accuracy_drop=0.01,
                      max_sensitivity_drop=0.0, other_candidate=other_worse,
                      other_current=other_current)
    assert not decision.promote
    assert decision.reasons == (
        "other clinics: skin-cancer referral sensitivity 0.9000 is below the current model's "
        "0.9500 minus the allowed drop 0.0000 (floor 0.9500)",)
    assert decision.to_dict()["other_candidate"]["referral_sensitivity"] == 0.90
    passed = decide(better, current, max_balanced_accuracy_drop=0.01, max_sensitivity_drop=0.0,
                    other_candidate=GateMetrics(0.55, 0.95, 0.5, 40),
                    other_current=other_current)
    assert passed.promote and passed.reasons == ()
    unmeasured = decide(better, current, max_balanced_accuracy_drop=0.01,
                        max_sensitivity_drop=0.0,
                        other_candidate=GateMetrics(float("nan"), 0.95, 0.5, 0),
                        other_current=other_current)
    assert unmeasured.reasons[0].startswith(
        "other clinics: balanced accuracy cannot be measured on the other clinics' test set")


# -- jobs ------------------------------------------------------------------------------------

def test_jobs_are_claimed_once_and_requeued_when_the_worker_dies(settings: Settings) -> None:
    db = open_engine_database(settings.replace(engine={"job_lease_seconds": 60,
                                                       "max_job_attempts": 2}))
    created = jobs.create_job(db, actor="account:admin", params={"views": 1})
    assert jobs.claim_next(db, "host:1").job_id == created.job_id
    assert jobs.claim_next(db, "host:2") is None
    jobs.heartbeat(db, created.job_id, "host:1")
    assert jobs.requeue_stale(db) == []

    later = utc_now() + timedelta(seconds=61)
    assert jobs.requeue_stale(db, now=later) == [created.job_id]
    requeued = jobs.get_job(db, created.job_id)
    assert (requeued.state, requeued.attempts, requeued.worker) == ("queued", 1, None)
    assert "worker host:1 stopped reporting" in requeued.error
    with pytest.raises(jobs.JobLostError, match="no longer owned by host:1"):
        jobs.heartbeat(db, created.job_id, "host:1")

    assert jobs.claim_next(db, "host:2").attempts == 2
    assert jobs.requeue_stale(db, now=utc_now() + timedelta(seconds=61)) == [created.job_id]
    failed = jobs.get_job(db, created.job_id)
    assert failed.state == "failed" and failed.error.endswith("gave up after 2 attempts")


# -- ingest ----------------------------------------------------------------------------------

def _upload(tmp_path: Path, ham_dir: Path, settings: Settings) -> tuple[dict, bytes]:
    station = make_station(settings.replace(home=tmp_path / "station"))
    capture = add_capture(station, ham_images(ham_dir, 1)[0], decision="indeterminate")
    upload = SyncRecords(station.database).upload_of(capture.id)
    return upload.metadata, upload.image


def _counts(db: EngineDatabase) -> tuple[int, int]:
    with db.transaction() as session:
        rows = session.scalar(select(func.count()).select_from(Capture))
    return rows, len(list(db.images.files()))


def test_ingest_refuses_corrupt_uploads_and_stores_retries_once(
    db: EngineDatabase, tmp_path: Path, ham_dir: Path, settings: Settings
) -> None:
    metadata, image = _upload(tmp_path, ham_dir, settings)
    enrollment = stations.enroll(db, stations.create_enrollment_code(db, "A", actor="t").code, "a")
    station = stations.authenticate(db, enrollment.token)
    parsed = CaptureMetadata.model_validate(metadata)
    uid, size = metadata["capture"]["uid"], len(image)

    with pytest.raises(InvalidError, match=f"capture {uid}: received {size - 100} image bytes, "
                       f"metadata says {size}; upload incomplete or corrupt, nothing stored"):
        ingest.store_capture(db, station, parsed, image[:-100])
    flipped = image[:500] + bytes([image[500] ^ 0xFF]) + image[501:]
    with pytest.raises(InvalidError, match="upload corrupt, nothing stored"):
        ingest.store_capture(db, station, parsed, flipped)
    assert _counts(db) == (0, 0)

    first = ingest.store_capture(db, station, parsed, image)
    again = ingest.store_capture(db, station, parsed, image)
    assert (first.duplicate, again.duplicate, again.capture_id) == (False, True, first.capture_id)
    assert _counts(db) == (1, 1)
    other = CaptureMetadata.model_validate(
        {**metadata, "capture": {**metadata["capture"], "image_sha256": "a" * 64}})
    with pytest.raises(ConflictError, match=f"capture {uid} is already stored with image sha256"):
        ingest.store_capture(db, station, other, image)
    named = CaptureMetadata.model_validate(
        {**metadata, "patient": {"pseudonym": "P-9", "name": "Jane Doe"},
         "capture": {**metadata["capture"], "uid": "00000000-0000-4000-8000-000000000001"}})
    with pytest.raises(InvalidError, match="this engine accepts pseudonyms only"):
        ingest.store_capture(db, station, named, image)
    assert _counts(db) == (1, 1)
    with db.transaction() as session:
        stored = session.scalar(select(Capture))
        assert (stored.original_label, stored.operator) == ("nv", "nurse")
    assert db.images.read(stored.image_ref, stored.image_sha256) == image


def test_sweep_removes_only_old_unreferenced_image_files(
    db: EngineDatabase, tmp_path: Path, ham_dir: Path, settings: Settings
) -> None:
    metadata, image = _upload(tmp_path, ham_dir, settings)
    station = stations.authenticate(db, stations.enroll(
        db, stations.create_enrollment_code(db, "A", actor="t").code, "a").token)
    ingest.store_capture(db, station, CaptureMetadata.model_validate(metadata), image)
    orphan = db.images.root / "ab" / ("ab" + "0" * 62 + ".png")
    orphan.parent.mkdir(parents=True, exist_ok=True)
    orphan.write_bytes(b"orphan")
    assert ingest.sweep_orphan_images(db) == 0  # younger than the grace period
    old = time.time() - 3600
    os.utime(orphan, (old, old))
    assert ingest.sweep_orphan_images(db) == 1
    assert not orphan.exists() and _counts(db) == (1, 1)


# -- review ----------------------------------------------------------------------------------

def test_review_queue_order_and_confirm_correct_rules(
    db: EngineDatabase, tmp_path: Path, ham_dir: Path, settings: Settings
) -> None:
    station_db = make_station(settings.replace(home=tmp_path / "st"))
    images = ham_images(ham_dir, 3)
    benign = add_capture(station_db, images[0], decision="benign", minutes=0)
    cancer = add_capture(station_db, images[1], decision="skin_cancer", referral=True, minutes=1)
    unlabelled = add_capture(station_db, images[2], decision="indeterminate", label=None,
                             minutes=2)
    station = stations.authenticate(db, stations.enroll(
        db, stations.create_enrollment_code(db, "A", actor="t").code, "a").token)
    records = SyncRecords(station_db.database)
    engine_ids = {}
    for capture in (benign, cancer, unlabelled):
        upload = records.upload_of(capture.id)
        engine_ids[capture.id] = ingest.store_capture(
            db, station, CaptureMetadata.model_validate(upload.metadata), upload.image).capture_id
    accounts.create_account(db, "drlee", PASSWORD, AccountRole.DERMATOLOGIST, actor="t")
    accounts.create_account(db, "boss", PASSWORD, AccountRole.ADMIN, actor="t")
    derm = accounts.authenticate(db, accounts.login(db, "drlee", PASSWORD).token)
    admin = accounts.authenticate(db, accounts.login(db, "boss", PASSWORD).token)

    queue = review.review_queue(db, derm)
    assert [(q.capture_id, q.urgent) for q in queue] == [
        (engine_ids[cancer.id], True), (engine_ids[unlabelled.id], True),
        (engine_ids[benign.id], False)]
    with pytest.raises(ForbiddenError, match="this needs the dermatologist role"):
        review.submit_review(db, admin, engine_ids[benign.id], "confirm")
    with pytest.raises(InvalidError, match="has no original label to confirm"):
        review.submit_review(db, derm, engine_ids[unlabelled.id], "confirm")
    with pytest.raises(InvalidError, match="'correct' needs a diagnosis code different from "
                       "the original label 'nv'"):
        review.submit_review(db, derm, engine_ids[benign.id], "correct", "nv")
    with pytest.raises(InvalidError, match="unknown diagnosis code 'mole'"):
        review.submit_review(db, derm, engine_ids[unlabelled.id], "correct", "mole")

    confirmed = review.submit_review(db, derm, engine_ids[benign.id], "confirm")
    corrected = review.submit_review(db, derm, engine_ids[cancer.id], "correct", "mel",
                                     "atypical")
    revised = review.submit_review(db, derm, engine_ids[cancer.id], "correct", "bcc")
    assert (confirmed.code, confirmed.action, corrected.code, revised.supersedes_id) == (
        "nv", "confirm", "mel", corrected.review_id)
    details = review.capture_details(db, derm, engine_ids[cancer.id])
    assert (details["original_label"], details["final_label"]) == ("nv", "bcc")
    assert [q.capture_id for q in review.review_queue(db, derm)] == [engine_ids[unlabelled.id]]
    pulled = review.reviews_for_station(db, station, after_id=confirmed.review_id)
    assert [(r.review_id, r.code) for r in pulled] == [
        (corrected.review_id, "mel"), (revised.review_id, "bcc")]
    with pytest.raises(DBAPIError, match="reviews is append-only"), \
            db.engine.begin() as connection:
        connection.execute(text("UPDATE reviews SET code = 'nv'"))
    with db.engine.connect() as connection:
        actions = connection.execute(text(
            "SELECT actor, action FROM audit_log WHERE action LIKE 'review%' ORDER BY id")).all()
    assert [tuple(a) for a in actions] == [
        ("account:drlee", "review_queue.viewed"), ("account:drlee", "review.confirmed"),
        ("account:drlee", "review.corrected"), ("account:drlee", "review.corrected"),
        ("account:drlee", "review_queue.viewed"), ("station:1", "reviews.pulled")]
    assert json.loads(json.dumps(details))["reviews"][0]["reviewer"] == "drlee"
