"""Signed model distribution to a station: install, forged and replayed manifests, a tampered
file, re-deployment and a one-command rollback — against a real engine over HTTPS."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from skinstation.engine.audit.models import AuditEvent
from skinstation.engine.models import service as registry
from skinstation.engine.models.models import Deployment, ModelStatus, ModelVersion
from skinstation.inference.model_file import file_sha256, load_model_file, save_model_file
from skinstation.services.models import ModelManager
from skinstation.settings import Settings
from skinstation.sync.cli import model_manager_installer
from skinstation.sync.credentials import CredentialStore
from skinstation.sync.pull import retry_delay
from skinstation.sync.runner import SyncRunner, enroll_station
from tests.conftest import REPO_ROOT
from tests.test_engine_helpers import (
    ADMIN_PASSWORD,
    EngineUnderTest,
    file_keyring,
    make_station,
    make_tls,
    start_engine,
    station_settings,
)
from tests.test_storage_helpers import FakeClock


@pytest.fixture(scope="module")
def engine(tmp_path_factory: pytest.TempPathFactory, data_dir: Path) -> Iterator[EngineUnderTest]:
    folder = tmp_path_factory.mktemp("model-engine")
    running = start_engine(folder, data_dir, make_tls(folder / "tls"))
    yield running
    running.server.stop()
    running.db.dispose()


def _audit(engine: EngineUnderTest, action: str) -> list[AuditEvent]:
    with engine.db.transaction() as session:
        return list(session.scalars(select(AuditEvent).where(AuditEvent.action == action)
                                    .order_by(AuditEvent.id)))


def _forge(engine: EngineUnderTest, version: str, manifest: dict, signature: str) -> None:
    """What an attacker with write access to the engine database could insert."""
    with engine.db.transaction() as session:
        row = session.scalar(select(ModelVersion).where(ModelVersion.version == version))
        sequence = session.scalar(select(func.max(Deployment.sequence))) + 1
        session.add(Deployment(sequence=sequence, model_version_id=row.id, action="promote",
                               actor="attacker", reason="", manifest=manifest,
                               signature=signature, key_id=manifest["key_id"],
                               deployed_at=row.created_at))


def test_station_installs_signed_models_and_refuses_forged_tampered_and_replayed_ones(
    engine: EngineUnderTest, tmp_path: Path, tiny_model: Path
) -> None:
    registry.register_model(engine.db, tiny_model, status=ModelStatus.PROMOTED, actor="test")
    first = registry.deploy(engine.db, "tiny-test-model", action="initial", actor="test",
                            reason="initial model")
    settings = station_settings(tmp_path, engine.url, engine.tls, name="st-models")
    bundled = tmp_path / "bundled.safetensors"
    bundled.write_bytes(tiny_model.read_bytes())
    settings = settings.replace(model_path=bundled)
    credentials = CredentialStore(settings.station_id, file_keyring(tmp_path / "keyring.cfg"))
    admin = engine.login("admin", ADMIN_PASSWORD)
    enroll_station(settings, engine.enrollment_code(admin, "models"), credentials)
    station = make_station(settings)
    manager = ModelManager(settings)
    runner = SyncRunner(settings, station.database, credentials=credentials,
                        installer=lambda path, sha: manager.install(path, sha).version)

    status = runner.sync_once()
    assert (status.state, status.model_version, status.model_deployment) == (
        "idle", "tiny-test-model", 1)
    assert manager.current_path() == settings.home / "models" / "tiny-test-model.safetensors"
    assert [e.detail["deployment"] for e in _audit(engine, "station.model_installed")] == [1]

    metadata, state = load_model_file(tiny_model)
    metadata.model_version, metadata.parent_version = "tiny-v2", "tiny-test-model"
    second = tmp_path / "tiny-v2.safetensors"
    save_model_file(second, state, metadata)
    registry.register_model(engine.db, second, status=ModelStatus.PROMOTED, actor="test")

    # 1. forged: a manifest for v2 carrying the signature of deployment 1
    forged = {**first.manifest, "deployment": 2, "version": "tiny-v2",
              "file_sha256": registry.list_versions(engine.db)[1].file_sha256}
    _forge(engine, "tiny-v2", forged, first.signature)
    status = runner.sync_once()
    assert status.state == "error"
    assert status.last_error == (
        "model tiny-v2 (deployment 2) refused: model manifest of version 'tiny-v2' has an "
        "invalid signature (tampered or not from the enrolled engine); refused")
    assert manager.classifier().version == "tiny-test-model"
    assert [e.entity_id for e in _audit(engine, "model.downloaded")] == ["tiny-test-model"]
    refused = _audit(engine, "station.model_refused")
    assert [(e.entity_id, e.detail["deployment"]) for e in refused] == [("tiny-v2", 2)]
    assert runner.sync_once().state == "error"  # refused again without re-reporting
    assert len(_audit(engine, "station.model_refused")) == 1

    # 2. tampered file: a genuine signed deployment whose stored file was altered afterwards
    stored = registry.model_path(engine.db, "tiny-v2")
    original = stored.read_bytes()
    stored.write_bytes(original[:-64] + bytes(64))
    downloads = len(_audit(engine, "model.downloaded"))
    registry.deploy(engine.db, "tiny-v2", action="promote", actor="test", reason="v2")
    status = runner.sync_once()
    assert status.state == "error" and status.last_error.startswith(
        "model tiny-v2 (deployment 3) refused: engine refused (200): downloaded model tiny-v2 "
        "does not match its signed manifest")
    assert len(_audit(engine, "model.downloaded")) == downloads + 1
    assert manager.classifier().version == "tiny-test-model"
    assert not list((settings.home / "models" / "incoming").glob("*"))

    # 3. fixed and deployed again: installed and used
    stored.write_bytes(original)
    registry.deploy(engine.db, "tiny-v2", action="promote", actor="test", reason="v2 again")
    status = runner.sync_once()
    assert (status.state, status.model_version, status.model_deployment) == ("idle", "tiny-v2", 4)
    assert manager.classifier().version == "tiny-v2"

    # 4. rollback is one command on the engine; the station follows
    env = {**os.environ, "SKINSTATION_CONFIG": str(engine.config)}
    result = subprocess.run(
        [sys.executable, "-m", "skinstation.cli", "engine", "models", "rollback", "--reason",
         "field reports"], env=env, cwd=REPO_ROOT, capture_output=True, text=True, timeout=120,
        check=False)
    assert (result.returncode, result.stdout.strip()) == (
        0, "rolled back to tiny-test-model (deployment 5)")
    status = runner.sync_once()
    assert (status.state, status.model_version, status.model_deployment) == (
        "idle", "tiny-test-model", 5)
    assert manager.classifier().version == "tiny-test-model"

    # 5. replay: the genuine, validly signed manifest of deployment 4 served again
    with engine.db.transaction() as session:
        old = session.scalar(select(Deployment).where(Deployment.sequence == 4))
        replay, replay_signature = dict(old.manifest), old.signature
    _forge(engine, "tiny-v2", replay, replay_signature)
    status = runner.sync_once()
    assert status.last_error == (
        "model tiny-v2 (deployment 4) refused: model manifest deployment 4 is not newer than the "
        "installed deployment 5; refused (replayed or stale manifest)")
    assert manager.classifier().version == "tiny-test-model"


def test_cli_installer_is_the_station_model_manager(tmp_path: Path, tiny_model: Path) -> None:
    settings = station_settings(tmp_path, "https://127.0.0.1:1", make_tls(tmp_path / "t"))
    install = model_manager_installer(settings.replace(model_path=tiny_model))
    assert install(tiny_model, file_sha256(tiny_model)) == "tiny-test-model"
    with pytest.raises(ValueError, match="the signed manifest says"):
        install(tiny_model, "0" * 64)


# -- a corrupted download is fetched again, with backoff, a bounded number of times ----------

def _tampered_deployment(engine: EngineUnderTest, tmp_path: Path, tiny_model: Path,
                         version: str) -> tuple[int, Path, bytes, str]:
    """Register and deploy ``version`` whose stored file is then altered (as on a bad disk).

    Returns the deployment number, the stored file, its genuine bytes and the message a
    station gets for the altered file.
    """
    metadata, state = load_model_file(tiny_model)
    metadata.model_version = version
    source = tmp_path / f"{version}.safetensors"
    save_model_file(source, state, metadata)
    registry.register_model(engine.db, source, status=ModelStatus.PROMOTED, actor="test")
    signed = registry.deploy(engine.db, version, action="promote", actor="test", reason=version)
    stored = registry.model_path(engine.db, version)
    genuine = stored.read_bytes()
    stored.write_bytes(genuine[:-64] + bytes(64))
    sha, bad = file_sha256(source), hashlib.sha256(stored.read_bytes()).hexdigest()
    mismatch = (f"engine refused (200): downloaded model {version} does not match its signed "
                f"manifest ({len(genuine)} bytes, sha256 {bad[:16]}…; manifest says "
                f"{len(genuine)} bytes, {sha[:16]}…)")
    return signed.manifest["deployment"], stored, genuine, mismatch


def _retry_runner(engine: EngineUnderTest, tmp_path: Path, tiny_model: Path, name: str,
                  clock: FakeClock, **sync: Any) -> tuple[SyncRunner, ModelManager]:
    settings = station_settings(tmp_path, engine.url, engine.tls, name=name, **sync)
    bundled = tmp_path / "bundled.safetensors"
    bundled.write_bytes(tiny_model.read_bytes())
    settings = settings.replace(model_path=bundled)
    credentials = CredentialStore(settings.station_id, file_keyring(tmp_path / "keyring.cfg"))
    enroll_station(settings, engine.enrollment_code(engine.login("admin", ADMIN_PASSWORD), name),
                   credentials)
    manager = ModelManager(settings)
    runner = SyncRunner(settings, make_station(settings).database, credentials=credentials,
                        installer=lambda path, sha: manager.install(path, sha).version,
                        clock=clock)
    return runner, manager


def _downloads(engine: EngineUnderTest, version: str) -> int:
    return sum(1 for e in _audit(engine, "model.downloaded") if e.entity_id == version)


def _refusals(engine: EngineUnderTest, version: str) -> list[str]:
    return [e.detail["detail"] for e in _audit(engine, "station.model_refused")
            if e.entity_id == version]


def test_a_corrupted_download_is_fetched_again_after_a_backoff_and_then_installs(
    engine: EngineUnderTest, tmp_path: Path, tiny_model: Path
) -> None:
    clock = FakeClock()
    runner, manager = _retry_runner(engine, tmp_path, tiny_model, "st-retry", clock)
    deployment, stored, genuine, mismatch = _tampered_deployment(
        engine, tmp_path, tiny_model, "tiny-retry")
    first_retry = (clock.now + timedelta(seconds=60)).isoformat()
    refused = (f"model tiny-retry (deployment {deployment}) refused: {mismatch} (attempt 1 of 5; "
               f"next attempt after {first_retry})")

    status = runner.sync_once()
    assert (status.state, status.last_error, status.model_version) == ("error", refused, None)
    assert (_downloads(engine, "tiny-retry"), _refusals(engine, "tiny-retry")) == (1, [refused])
    assert manager.classifier().version == "tiny-test-model"

    stored.write_bytes(genuine)  # repaired on the engine, without a new deployment
    clock.advance(seconds=59)
    status = runner.sync_once()  # still inside the backoff: not downloaded, not re-reported
    assert (status.state, status.last_error) == ("error", refused)
    assert (_downloads(engine, "tiny-retry"), len(_refusals(engine, "tiny-retry"))) == (1, 1)

    clock.advance(seconds=1)
    status = runner.sync_once()
    assert (status.state, status.last_error, status.model_version, status.model_deployment) == (
        "idle", None, "tiny-retry", deployment)
    assert manager.classifier().version == "tiny-retry"
    assert _downloads(engine, "tiny-retry") == 2
    installed = [e.detail["deployment"] for e in _audit(engine, "station.model_installed")
                 if e.entity_id == "tiny-retry"]
    assert installed == [deployment]
    assert runner.records.get("model.refused") == ""
    assert not list((runner.settings.home / "models" / "incoming").glob("*"))


def test_retries_of_a_corrupted_download_back_off_and_stop_after_max_attempts(
    engine: EngineUnderTest, tmp_path: Path, tiny_model: Path
) -> None:
    clock = FakeClock()
    runner, manager = _retry_runner(engine, tmp_path, tiny_model, "st-giveup", clock,
                                    model_max_attempts=4)
    deployment, _stored, _genuine, mismatch = _tampered_deployment(
        engine, tmp_path, tiny_model, "tiny-giveup")
    prefix = f"model tiny-giveup (deployment {deployment}) refused: {mismatch}"

    waits = []
    for attempt in (1, 2, 3):
        started = clock.now
        status = runner.sync_once()
        retry_at = datetime.fromisoformat(status.last_error.rsplit("after ", 1)[1][:-1])
        waits.append((retry_at - started).total_seconds())
        assert status.last_error == (f"{prefix} (attempt {attempt} of 4; next attempt after "
                                     f"{retry_at.isoformat()})")
        clock.advance(seconds=waits[-1] - 1)  # one second early: nothing is downloaded
        assert runner.sync_once().state == "error"
        assert _downloads(engine, "tiny-giveup") == attempt
        clock.advance(seconds=1)
    assert waits == [60.0, 120.0, 240.0]

    status = runner.sync_once()  # the fourth and last attempt
    given_up = f"{prefix} (attempt 4 of 4; given up until the engine publishes another deployment)"
    assert (status.state, status.last_error) == ("error", given_up)
    clock.advance(days=30)
    assert runner.sync_once().last_error == given_up
    assert _downloads(engine, "tiny-giveup") == 4
    assert [r.split(" (attempt ")[1][:6] for r in _refusals(engine, "tiny-giveup")] == [
        "1 of 4", "2 of 4", "3 of 4", "4 of 4"]
    assert _refusals(engine, "tiny-giveup")[-1] == given_up
    assert manager.classifier().version == "tiny-test-model"


def test_retry_delay_doubles_from_a_minute_up_to_an_hour() -> None:
    assert [retry_delay(n).total_seconds() for n in range(1, 10)] == [
        60.0, 120.0, 240.0, 480.0, 960.0, 1920.0, 3600.0, 3600.0, 3600.0]
    with pytest.raises(ValueError, match=r"sync\.model_max_attempts must be >= 1, got 0"):
        Settings.load(env={}, sync={"model_max_attempts": 0})
