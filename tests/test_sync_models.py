"""Signed model distribution to a station: install, forged and replayed manifests, a tampered
file, re-deployment and a one-command rollback — against a real engine over HTTPS."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import func, select

from skinstation.engine.audit.models import AuditEvent
from skinstation.engine.models import service as registry
from skinstation.engine.models.models import Deployment, ModelStatus, ModelVersion
from skinstation.inference.model_file import load_model_file, save_model_file
from skinstation.services.models import ModelManager
from skinstation.sync.cli import model_manager_installer
from skinstation.sync.credentials import CredentialStore
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
    from skinstation.inference.model_file import file_sha256

    assert install(tiny_model, file_sha256(tiny_model)) == "tiny-test-model"
    with pytest.raises(ValueError, match="the signed manifest says"):
        install(tiny_model, "0" * 64)
