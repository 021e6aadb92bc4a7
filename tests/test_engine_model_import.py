"""Importing a model file registers a candidate; only the gate (or an audited --force) deploys.

The engine runs in its own process over HTTPS; the administrator's commands run through the
real CLI entry point against the same database. Stations ask ``/models/current`` what to use.
The bundled model (whose metrics hold NaN) is imported on SQLite and PostgreSQL.
"""

from __future__ import annotations

import contextlib
import io
import json
import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from alembic import command
from sqlalchemy import text

from skinstation.cli import main
from skinstation.core.jsonvalues import finite_json
from skinstation.engine.audit import service as audit
from skinstation.engine.database import alembic_config, open_engine_database
from skinstation.engine.errors import InvalidError
from skinstation.engine.models import imports, signing
from skinstation.engine.models import service as registry
from skinstation.inference.model_file import load_model_file, save_model_file
from skinstation.resources import RESOURCES_DIR
from skinstation.settings import Settings
from skinstation.storage.database import create_station_engine
from tests.test_engine_helpers import (
    ADMIN_PASSWORD,
    EngineUnderTest,
    make_tls,
    start_engine,
    tiny_engine_options,
)
from tests.test_storage_helpers import BACKENDS, postgres_schema_url

BUNDLED = sorted((RESOURCES_DIR / "models").glob("*.safetensors"))
CLAIMED = {"test": {"balanced_accuracy": 0.99, "referral": {"sensitivity": 1.0},
                    "images": 7, "per_class": {"df": {"auc": float("nan")}}}}


def test_finite_json_turns_nan_and_infinity_into_null() -> None:
    value = {"a": float("nan"), 3: [float("inf"), -float("inf"), 0.25, (1, True)],
             "b": {"c": None, "d": "NaN"}}
    assert finite_json(value) == {"a": None, "3": [None, None, 0.25, [1, True]],
                                  "b": {"c": None, "d": "NaN"}}
    json.dumps(finite_json(value), allow_nan=False)  # valid JSON
    with pytest.raises(TypeError, match="set has no JSON form"):
        finite_json({"x": {1}})


def _variant(source: Path, target: Path, version: str, *, worse: bool = False) -> Path:
    """A copy of a model file under another version, claiming excellent metrics.

    ``worse``: a class bias makes it answer "nv" for every image (balanced accuracy 1/7).
    """
    metadata, state = load_model_file(source)
    metadata.model_version, metadata.parent_version = version, "tiny-test-model"
    metadata.metrics = CLAIMED
    if worse:
        metadata.class_bias = [30.0 if c == "nv" else -30.0 for c in metadata.classes]
    save_model_file(target, state, metadata)
    return target


@pytest.fixture()
def engine(tmp_path: Path, data_dir: Path, tiny_manifest: Path,
           tiny_model: Path) -> Iterator[EngineUnderTest]:
    options = {**tiny_engine_options(tiny_manifest, tiny_model),
               "max_balanced_accuracy_drop": 0.0, "max_sensitivity_drop": 0.0}
    running = start_engine(tmp_path, data_dir, make_tls(tmp_path / "tls"), options=options)
    try:
        yield running
    finally:
        running.server.stop()
        running.db.dispose()


def _model_actions(engine: EngineUnderTest) -> list[tuple[str, str | None, dict[str, Any]]]:
    with engine.db.transaction() as session:
        rows = audit.query(session, limit=10_000)
    return [(r.action, r.entity_id, r.detail) for r in rows if r.action.startswith("model.")]


def test_import_registers_a_candidate_and_only_the_gate_or_force_deploys(
    engine: EngineUnderTest, tiny_model: Path, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("SKINSTATION_CONFIG", str(engine.config))

    def run(*args: str) -> tuple[int, str, str]:
        monkeypatch.setattr("sys.stdin", io.StringIO(""))
        code = main(["engine", "models", *args])
        out, err = capsys.readouterr()
        return code, out.strip(), err.strip()

    admin = engine.login("admin", ADMIN_PASSWORD)
    enrolled = engine.post("/enroll", json={"code": engine.enrollment_code(admin, "Clinic M"),
                                            "station_ref": "m-1"})
    station = enrolled.json()["token"]

    def station_model() -> tuple[int, str, int]:
        answer = engine.get("/models/current", station)
        return answer.status_code, answer.json()["manifest"]["version"], \
            answer.json()["manifest"]["deployment"]

    assert engine.get("/models/current", station).status_code == 404
    assert run("import", str(tiny_model)) == (
        0, "registered tiny-test-model and deployed it as deployment 1 (the first model)", "")
    assert station_model() == (200, "tiny-test-model", 1)

    # -- a new file is a candidate: no station gets it; the claimed metrics stay claims ----
    same = _variant(tiny_model, tmp_path / "v2.safetensors", "tiny-v2")
    assert run("import", str(same)) == (
        0, "registered tiny-v2 as a candidate; stations keep the current model until it "
        "passes the gate: skinstation engine models gate tiny-v2", "")
    assert station_model() == (200, "tiny-test-model", 1)
    assert run("import", str(same), "--force") == (
        1, "", "error: --force deploys a model without the promotion gate: give the reason "
        "with --reason TEXT (it goes into the audit log)")
    assert run("import", str(same), "--force", "--reason", "  ")[0] == 1
    assert registry.get_version(engine.db, "tiny-v2").status == "candidate"
    assert station_model() == (200, "tiny-test-model", 1)

    # -- the gate measures both on the locked test set: an equal model passes ---------------
    code, out, _ = run("gate", "tiny-v2", "--quiet")
    assert (code, out) == (0, "tiny-v2: promoted (gate against tiny-test-model on 7 "
                              "locked-test images)")
    assert station_model() == (200, "tiny-v2", 2)
    passed = registry.get_version(engine.db, "tiny-v2")
    measured = passed.gate_metrics["locked_test"]
    assert (passed.status, measured["images"], passed.report["metrics_source"]) == (
        "promoted", 7, "evaluated by the engine on the locked test set (claimed metrics not "
        "used)")
    assert passed.claimed_metrics == finite_json(CLAIMED)
    assert passed.claimed_metrics["test"]["per_class"]["df"]["auc"] is None
    assert measured["balanced_accuracy"] == passed.report["current"]["balanced_accuracy"] < 0.99

    # -- a model that claims 0.99 but answers "nv" for everything is rejected ---------------
    worse = _variant(tiny_model, tmp_path / "worse.safetensors", "tiny-worse", worse=True)
    assert run("import", str(worse))[0] == 0
    code, out, _ = run("gate", "tiny-worse", "--quiet")
    rejected = registry.get_version(engine.db, "tiny-worse")
    floor = rejected.report["current"]["balanced_accuracy"]
    assert rejected.gate_metrics["locked_test"]["balanced_accuracy"] == pytest.approx(1 / 7)
    assert (code, out.splitlines()) == (1, [
        "tiny-worse: rejected (gate against tiny-v2 on 7 locked-test images)",
        f"  balanced accuracy 0.1429 is below the current model's {floor:.4f} minus the "
        f"allowed drop 0.0000 (floor {floor:.4f})"])
    assert (rejected.status, rejected.decided_by) == ("rejected", rejected.created_by)
    assert station_model() == (200, "tiny-v2", 2)
    assert run("gate", "tiny-worse") == (
        1, "", "error: model tiny-worse is rejected; only a candidate goes through the gate")
    assert run("import", str(worse), "--force", "--reason", "x") == (
        1, "", "error: model tiny-worse was rejected by the gate; it cannot be forced (import "
        "a new version)")

    # -- --force with a reason deploys past the gate, audited --------------------------------
    forced = _variant(tiny_model, tmp_path / "v3.safetensors", "tiny-v3")
    assert run("import", str(forced), "--force", "--reason", "hotfix for clinic M") == (
        0, "registered tiny-v3 and deployed it as deployment 3 (forced past the promotion "
        "gate)", "")
    assert station_model() == (200, "tiny-v3", 3)

    code, out, _ = run("list")
    lines = out.splitlines()
    assert code == 0 and [line.split()[:3] for line in lines] == [
        ["tiny-test-model", "promoted", "parent"], ["tiny-v2", "promoted", "parent"],
        ["tiny-worse", "rejected", "parent"], ["*", "tiny-v3", "promoted"]]
    assert lines[1].endswith(f"claimed BA 0.990 / referral sens 1.000  gate BA "
                             f"{measured['balanced_accuracy']:.3f} / referral sens "
                             f"{measured['referral']['sensitivity']:.3f}")
    assert lines[3].endswith("claimed BA 0.990 / referral sens 1.000  gate not run")

    actions = [(a, e, d.get("reason")) for a, e, d in _model_actions(engine)]
    assert actions == [
        ("model.candidate", "tiny-test-model", None),
        ("model.deployed.initial", "tiny-test-model", imports.FIRST_MODEL_REASON),
        ("model.candidate", "tiny-v2", None),
        ("model.deployed.promote", "tiny-v2", "passed the promotion gate against "
                                              "tiny-test-model"),
        ("model.candidate", "tiny-worse", None),
        ("model.rejected", "tiny-worse", None),
        ("model.candidate", "tiny-v3", None),
        ("model.forced", "tiny-v3", "hotfix for clinic M"),
        ("model.deployed.promote", "tiny-v3", "forced past the promotion gate: hotfix for "
                                              "clinic M"),
    ]
    forced_detail = next(d for a, _, d in _model_actions(engine) if a == "model.forced")
    assert forced_detail == {"reason": "hotfix for clinic M", "replaces": "tiny-v2",
                             "status": "candidate"}


@contextlib.contextmanager
def _database(settings: Settings, backend: str) -> Iterator[Any]:
    with contextlib.ExitStack() as stack:
        url = "" if backend == "sqlite" else stack.enter_context(postgres_schema_url())
        db = open_engine_database(settings.replace(engine={"database_url": url}))
        stack.callback(db.dispose)
        signing.ensure_signing_key(db, actor="test")
        yield db


@pytest.mark.parametrize("backend", BACKENDS)
def test_bundled_model_imports_with_nan_metrics_stored_as_null(settings: Settings,
                                                               backend: str) -> None:
    assert len(BUNDLED) == 1
    claims = load_model_file(BUNDLED[0])[0].metrics
    assert math.isnan(claims["pad-ufes-20"]["per_class"]["df"]["auc"])  # NaN in the file
    with _database(settings, backend) as db:
        done = imports.import_model(db, BUNDLED[0], actor="cli:root")
        assert (done.how, done.version.status, done.version.deployed) == (
            "first", "promoted", True)
        assert done.deployment is not None and done.deployment.manifest["deployment"] == 1
        with db.engine.connect() as connection:
            raw = connection.execute(text(
                "SELECT CAST(metrics AS TEXT), CAST(report AS TEXT) FROM model_versions")).one()
        assert "NaN" not in raw[0] and json.loads(raw[0]) == finite_json(claims)
        assert json.loads(raw[0])["pad-ufes-20"]["per_class"]["df"]["auc"] is None
        assert json.loads(raw[1]) == {}
        registry.record_gate(db, done.version.version,
                             gate_metrics={"locked_test": {"balanced_accuracy": float("nan")}},
                             report={"gate": {"figures": [float("inf"), 0.5]}})
        again = registry.get_version(db, done.version.version)
        assert (again.gate_metrics, again.report) == (
            {"locked_test": {"balanced_accuracy": None}}, {"gate": {"figures": [None, 0.5]}})
        assert imports.import_model(db, BUNDLED[0], actor="cli:root").how == "known"
        with pytest.raises(InvalidError, match="is already the current model"):
            imports.import_model(db, BUNDLED[0], actor="cli:root", force=True, reason="again")
        assert [v.version for v in registry.list_versions(db)] == [done.version.version]


@pytest.mark.parametrize("backend", BACKENDS)
def test_migration_moves_measured_figures_out_of_the_claimed_metrics(
    settings: Settings, backend: str
) -> None:
    with contextlib.ExitStack() as stack:
        url = (f"sqlite:///{settings.home / 'engine.db'}" if backend == "sqlite"
               else stack.enter_context(postgres_schema_url()))
        settings.home.mkdir(parents=True, exist_ok=True)
        engine = create_station_engine(url)
        stack.callback(engine.dispose)
        config = alembic_config(engine)
        command.upgrade(config, "0003")
        metrics = {"test": {"images": 40}, "locked_test": {"images": 7},
                   "other_clinics": {"images": 5}}
        with engine.begin() as connection:
            connection.execute(text(
                "INSERT INTO model_versions (version, file_ref, file_sha256, content_sha256, "
                "file_size, status, data_fingerprint, metrics, report, created_by, created_at) "
                "VALUES ('m1', 'm1.safetensors', :sha, :sha, 10, 'promoted', 'fp', :metrics, "
                "'{}', 'gate:job-1', '2025-05-01 09:00:00')"),
                {"sha": "a" * 64, "metrics": json.dumps(metrics)})
        command.upgrade(config, "head")
        select_both = text("SELECT CAST(metrics AS TEXT), CAST(gate_metrics AS TEXT) "
                           "FROM model_versions")
        with engine.connect() as connection:
            claimed, measured = connection.execute(select_both).one()
        assert json.loads(claimed) == {"test": {"images": 40}}
        assert json.loads(measured) == {"locked_test": {"images": 7},
                                        "other_clinics": {"images": 5}}
        command.downgrade(config, "0003")
        with engine.connect() as connection:
            back = connection.execute(text("SELECT CAST(metrics AS TEXT) FROM model_versions"))
            assert json.loads(back.scalar_one()) == metrics
