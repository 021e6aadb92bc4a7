"""``skinstation train --run / --status / --resume``: a long run in a run folder.

The run is stopped by a real SIGTERM (sent by the process to itself right after its first
epoch's status is written, so the test does not race the training), reports ``stopped``,
resumes with its own recorded arguments and finishes (that the resumed weights equal an
uninterrupted run's is tested on the loop itself, in ``test_training_loop``). ``--also``
adds a second source whose test part is reported as ``other-clinics``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from skinstation.inference.model_file import load_model_file
from tests.conftest import REPO_ROOT, write_manifest


def _env(home: Path) -> dict[str, str]:
    return {**os.environ, "SKINSTATION_HOME": str(home), "SKINSTATION_CONFIG": ""}


def _cli(home: Path, *args: str, sigterm_after_epochs: int = 0) -> subprocess.CompletedProcess:
    script = textwrap.dedent(f"""
        import os, signal, sys
        sys.path.insert(0, {str(REPO_ROOT)!r})
        from skinstation.training import runs
        original = runs.write_status
        def write_status(folder, state, history, *rest, **kw):
            original(folder, state, history, *rest, **kw)
            done = sum(1 for h in history if h.get("epoch", -1) >= 0)
            if {sigterm_after_epochs} and done == {sigterm_after_epochs}:
                os.kill(os.getpid(), signal.SIGTERM)
        runs.write_status = write_status
        import skinstation.cli_train
        skinstation.cli_train.write_status = write_status
        from skinstation.cli import main
        raise SystemExit(main(sys.argv[1:]))
    """)
    return subprocess.run([sys.executable, "-c", script, *args], cwd=REPO_ROOT, env=_env(home),
                          capture_output=True, text=True, timeout=600, check=False)


@pytest.fixture(scope="module")
def sources(tmp_path_factory, ham_dir):
    folder = tmp_path_factory.mktemp("run-sources")
    return (write_manifest(folder / "main.csv", ham_dir, per_class=5),
            write_manifest(folder / "other.csv", ham_dir, per_class=7, offset=5), folder)


def _train_dx(sources) -> list[str]:
    import csv

    main, other, folder = sources
    dx = []
    for manifest, split in ((main, "main-split.csv"), (other, "other-split.csv")):
        with open(manifest, newline="") as stream:
            by_image = {row["image"]: row["dx"] for row in csv.DictReader(stream)}
        with open(folder / split, newline="") as stream:
            dx += [by_image[row["image_id"]] for row in csv.DictReader(stream)
                   if row["split"] == "train"]
    return dx


def _train_args(sources, tiny_model: Path, out: Path) -> list[str]:
    main, other, folder = sources
    return ["train", "--data", f"manifest:{main}", "--split", str(folder / "main-split.csv"),
            "--also", f"manifest:{other}={folder / 'other-split.csv'}",
            "--init-model", str(tiny_model), "--full-epochs", "2", "--full-batch-size", "4",
            "--out", str(out), "--seed", "3", "--class-weighting", "logit_adjusted"]


def test_a_run_stops_on_sigterm_reports_its_status_and_resumes_to_the_same_model(
        sources, tiny_model, tmp_path):
    home = tmp_path / "home"
    args = _train_args(sources, tiny_model, tmp_path / "run.safetensors")
    stopped = _cli(home, *args, "--run", "nightly", sigterm_after_epochs=1)
    assert stopped.returncode == 3, stopped.stderr[-3000:]
    folder = home / "runs" / "nightly"
    assert "run nightly stopped: stopped in epoch 2" in stopped.stderr
    assert not (tmp_path / "run.safetensors").exists()
    status = json.loads((folder / "status.json").read_text())
    assert status["state"] == "stopped" and status["epochs_done"] == 1
    assert "resume with: skinstation train --resume nightly" in status["message"]
    for name in ("request.json", "status.json", "checkpoint.pt", "train.log"):
        assert oct((folder / name).stat().st_mode & 0o777) == "0o600", name
    assert json.loads((folder / "request.json").read_text())["arguments"] == args

    shown = _cli(home, "train", "--status", "nightly")
    assert shown.returncode == 0, shown.stderr
    assert "run nightly" in shown.stdout and ": stopped," in shown.stdout
    assert "epoch 1/2 of the whole-network fine-tune" in shown.stdout
    assert "per epoch; ETA" in shown.stdout and "epoch 1: val balanced accuracy" in shown.stdout

    resumed = _cli(home, "train", "--resume", "nightly")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "resuming run nightly" in resumed.stdout
    assert "[full fine-tune] resuming epoch 2 at image" in resumed.stderr
    status = json.loads((folder / "status.json").read_text())
    assert status["state"] == "finished" and status["epochs_done"] == 2
    assert len(status["epoch_seconds"]) == 2
    assert "[full fine-tune] epoch 2: loss" in (folder / "train.log").read_text()

    metadata, _ = load_model_file(tmp_path / "run.safetensors")
    assert metadata.training["run"] == "nightly"
    assert set(metadata.metrics) == {"test", "other-clinics"}
    assert metadata.metrics["other-clinics"]["images"] > 0
    # logit-adjusted: the training prior (both sources' training parts) is in the model file
    train_counts = np.bincount([metadata.classes.index(dx) for dx in _train_dx(sources)],
                               minlength=7)
    np.testing.assert_allclose(metadata.training_log_prior,
                               np.log(np.maximum(train_counts, 1) / train_counts.sum()))
    referral = metadata.metrics["test"]["referral"]
    assert set(referral) >= {"not_assessable", "flagged_or_not_assessable", "threshold_only"}
    assert referral["flagged_or_not_assessable"]["sensitivity"] >= referral["sensitivity"]


def test_run_names_and_missing_runs_are_clear_errors(sources, tiny_model, tmp_path):
    home = tmp_path / "home"
    missing = _cli(home, "train", "--status", "never-started")
    assert missing.returncode == 1
    assert "error: no run 'never-started' (looked for" in missing.stderr
    bad = _cli(home, "train", "--resume", "../../etc")
    assert bad.returncode == 1 and "run name '../../etc': use letters, digits" in bad.stderr
    (home / "runs" / "taken").mkdir(parents=True)
    (home / "runs" / "taken" / "request.json").write_text(json.dumps({"arguments": ["x"]}))
    clash = _cli(home, *_train_args(sources, tiny_model, tmp_path / "m.st"), "--run", "taken")
    assert clash.returncode == 1 and "run taken already exists with other arguments" in \
        clash.stderr
    (home / "runs" / "taken" / "status.json").write_text("{not json")
    torn = _cli(home, "train", "--status", "taken")
    assert torn.returncode == 1 and "error: unreadable run status" in torn.stderr
    no_out = _cli(home, "train", "--data", "ham10000:ham10000")
    assert no_out.returncode == 1 and "train needs --out" in no_out.stderr
