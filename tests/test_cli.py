"""The CLI end to end, as a user runs it (subprocesses), on real images."""

import dataclasses
import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import write_manifest

REPO = Path(__file__).resolve().parent.parent


def run(*args, cwd=REPO):
    return subprocess.run([sys.executable, "-m", "skinstation.cli", *args], cwd=cwd,
                          capture_output=True, text=True, timeout=600)


@pytest.fixture(scope="module")
def trained(tmp_path_factory, ham_dir):
    folder = tmp_path_factory.mktemp("cli")
    manifest = write_manifest(folder / "cases.csv", ham_dir, per_class=6)
    result = run("train", "--data", f"manifest:{manifest}", "--split", str(folder / "split.csv"),
                 "--out", str(folder / "m.safetensors"), "--views", "1", "--head-epochs", "2",
                 "--epochs", "1", "--cache", str(folder / "cache"), "--version", "cli-test")
    assert result.returncode == 0, result.stderr
    return folder, result


def test_train_prints_progress_and_saves_a_model(trained):
    folder, result = trained
    assert "saved" in result.stdout and "cli-test" in result.stdout
    assert "[features view 1/1]" in result.stderr and "ETA" in result.stderr
    assert "[test] balanced accuracy" in result.stderr
    assert (folder / "m.safetensors").is_file()
    assert (folder / "m.safetensors.reports" / "test" / "report.html").is_file()
    assert (folder / "split.csv").is_file() and (folder / "split.json").is_file()


def test_recalibrate_at_another_input_size(trained, ham_dir, tmp_path):
    from skinstation.inference.classifier import Classifier
    from skinstation.inference.model_file import load_model_file
    from skinstation.inference.preprocessing import decode_image

    folder, _ = trained
    out = tmp_path / "size256.safetensors"
    result = run("recalibrate", "--model", str(folder / "m.safetensors"), "--data",
                 f"manifest:{folder / 'cases.csv'}", "--split", str(folder / "split.csv"),
                 "--out", str(out), "--size", "256")
    assert result.returncode == 0, result.stderr
    assert "input size 224 -> 256 px" in result.stderr
    before, before_state = load_model_file(folder / "m.safetensors")
    after, after_state = load_model_file(out)
    assert before.preprocess["size"] == 224 and after.preprocess["size"] == 256
    assert after.training["preprocess"]["size"] == 224  # what the network trained on
    assert {k: v for k, v in after.preprocess.items() if k != "size"} == {
        k: v for k, v in before.preprocess.items() if k != "size"}
    for name, tensor in before_state.items():
        assert after_state[name].equal(tensor)
    # the features move with the size, so the not-assessable threshold is refitted
    assert "assessability threshold" in result.stderr
    assert after.assessability["false_rejection_target"] == 0.03
    assert after.assessability["threshold"] != before.assessability["threshold"]
    classifier = Classifier.load(out, warm_up=False)
    assert classifier.preprocess_config.size == 256
    image = decode_image(next(ham_dir.glob("images/*.jpg")))
    prediction = classifier.classify(image)  # the station's path, at 256 px
    assert prediction.model_version == after.model_version and prediction.seconds > 0
    refused = run("recalibrate", "--model", str(folder / "m.safetensors"), "--out",
                  str(tmp_path / "never.safetensors"), "--size", "8")
    assert refused.returncode == 2 and "must be at least 16 px, got 8" in refused.stderr


def test_recalibrate_a_model_without_assessability_statistics(trained, tmp_path):
    from skinstation.inference.assessability import STATE_PREFIX
    from skinstation.inference.model_file import load_model_file, save_model_file

    folder, _ = trained
    metadata, state = load_model_file(folder / "m.safetensors")
    bare = tmp_path / "bare.safetensors"
    save_model_file(bare, {k: v for k, v in state.items() if not k.startswith(STATE_PREFIX)},
                    dataclasses.replace(metadata, assessability={"method": "none",
                                                                 "threshold": None}))
    data = ("--data", f"manifest:{folder / 'cases.csv'}", "--split", str(folder / "split.csv"))
    refused = run("recalibrate", "--model", str(bare), *data,
                  "--out", str(tmp_path / "never.safetensors"), "--false-rejection", "0.05")
    assert refused.returncode == 1
    assert "has no assessability statistics to refit a threshold on" in refused.stderr
    assert "[evaluate]" not in refused.stderr  # refused before the validation pass
    assert not (tmp_path / "never.safetensors").exists()
    resized = run("recalibrate", "--model", str(bare), *data,
                  "--out", str(tmp_path / "bare256.safetensors"), "--size", "256")
    assert resized.returncode == 0, resized.stderr
    assert "assessability threshold" not in resized.stderr  # nothing to refit
    after, _ = load_model_file(tmp_path / "bare256.safetensors")
    assert after.preprocess["size"] == 256 and after.assessability["method"] == "none"


def test_evaluate_on_a_manifest_writes_report(trained, ham_dir, tmp_path):
    folder, _ = trained
    holdout = write_manifest(tmp_path / "holdout.csv", ham_dir, per_class=2, offset=6)
    report = tmp_path / "report"
    result = run("evaluate", "--model", str(folder / "m.safetensors"), "--data",
                 f"manifest:{holdout}", "--report", str(report), "--bootstrap", "50")
    assert result.returncode == 0, result.stderr
    assert "balanced accuracy" in result.stdout and "per-class sensitivity" in result.stdout
    metrics = json.loads((report / "metrics.json").read_text())
    assert metrics["images"] == 14
    assert sum(metrics["class_counts"].values()) == 14
    assert {p.name for p in report.iterdir()} >= {"metrics.json", "report.html",
                                                   "confusion_matrix.png", "reliability.png",
                                                   "roc_skin_cancer.png"}


def test_evaluate_on_pad_layout_with_split(trained, pad_dir, tmp_path):
    folder, _ = trained
    from skinstation.training.sources import load_pad_ufes20
    from skinstation.training.splits import make_split, save_split
    records, _ = load_pad_ufes20(pad_dir)
    split_file = save_split(make_split(records, (0.95, 0.0, 0.05)), records, tmp_path / "p.csv")
    result = run("evaluate", "--model", str(folder / "m.safetensors"), "--data", str(pad_dir),
                 "--split", str(split_file), "--subset", "test", "--report",
                 str(tmp_path / "r"), "--bootstrap", "20")
    assert result.returncode == 0, result.stderr
    metrics = json.loads((tmp_path / "r" / "metrics.json").read_text())
    assert 20 <= metrics["images"] <= 60


def test_predict_prints_classes_groups_and_decision(trained, ham_dir):
    folder, _ = trained
    images = [str(ham_dir / "images" / f"{i}.jpg") for i in ("ISIC_0027419", "ISIC_0024306")]
    result = run("predict", *images, "--model", str(folder / "m.safetensors"))
    assert result.returncode == 0, result.stderr
    assert result.stdout.count("decision:") + result.stdout.count("Not assessable") >= 2
    assert "not a diagnosis" in result.stdout
    as_json = run("predict", images[0], "--model", str(folder / "m.safetensors"), "--json",
                  "--language", "ko")
    payload = json.loads(as_json.stdout)
    assert payload["model_version"] == "cli-test"
    assert payload["notice"].startswith("이 결과는")
    if payload["assessable"]:
        assert set(payload["class_probs"]) == {"akiec", "bcc", "bkl", "df", "mel", "nv", "vasc"}
        assert abs(sum(payload["group_probs"].values()) - 1) < 1e-9


def test_cli_errors_are_clear(trained, tmp_path):
    folder, _ = trained
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"nope")
    result = run("predict", str(broken), "--model", str(folder / "m.safetensors"))
    assert result.returncode == 1
    assert "cannot decode image" in result.stderr and "broken.jpg" in result.stderr
    assert "Traceback" not in result.stderr
    missing = run("predict", str(broken), "--model", str(tmp_path / "none.safetensors"))
    assert missing.returncode == 1 and "cannot read model file" in missing.stderr
    bad_source = run("evaluate", "--model", str(folder / "m.safetensors"), "--data",
                     str(tmp_path))
    assert bad_source.returncode == 1 and "cannot tell the layout" in bad_source.stderr


def test_recalibrate_refits_operating_points_without_retraining(trained, tmp_path):
    from skinstation.inference.model_file import load_model_file

    folder, _ = trained
    out = tmp_path / "recal.safetensors"
    result = run("recalibrate", "--model", str(folder / "m.safetensors"), "--data",
                 f"manifest:{folder / 'cases.csv'}", "--split", str(folder / "split.csv"),
                 "--out", str(out), "--min-sensitivity", "mel=1.0", "--false-rejection", "0.25")
    assert result.returncode == 0, result.stderr
    assert "decision offsets (validation):" in result.stderr
    before, before_state = load_model_file(folder / "m.safetensors")
    after, after_state = load_model_file(out)
    assert after.training["recalibrated_from"] == before.model_version
    assert after.training["min_sensitivity"] == {"mel": 1.0}
    assert len(after.class_bias) == 7
    # the offsets give every validation melanoma the melanoma decision (the minimum asked for)
    from skinstation.inference.classifier import Classifier
    from skinstation.training.evaluation import run_model
    from skinstation.training.sources import load_source
    from skinstation.training.splits import load_split

    records, _ = load_source(f"manifest:{folder / 'cases.csv'}")
    val = load_split(folder / "split.csv", records).select(records, "val")
    recalibrated = Classifier.load(out, warm_up=False)
    outputs = run_model(recalibrated, val, log=lambda message: None)
    predicted = recalibrated.predicted_classes(outputs.probs)
    melanomas = [i for i, record in enumerate(val) if record.dx == "mel"]
    assert melanomas and all(predicted[i] == 4 for i in melanomas)
    for name, tensor in before_state.items():  # the weights are untouched
        assert after_state[name].equal(tensor)
    assert after.metrics["test"]["images"] == before.metrics["test"]["images"]
    # the not-assessable threshold was refitted at the stricter validation rejection rate
    assert "assessability threshold" in result.stderr
    assert after.assessability["false_rejection_target"] == 0.25
    assert before.assessability["false_rejection_target"] == 0.03
    assert after.assessability["val_false_rejection"] <= 0.25
    assert after.assessability["threshold"] <= before.assessability["threshold"]
    assert after.assessability["method"] == before.assessability["method"] == "subspace"
    refused = run("recalibrate", "--model", str(folder / "m.safetensors"), "--out",
                  str(tmp_path / "never.safetensors"), "--false-rejection", "1.5")
    assert refused.returncode == 2 and "must be a fraction in [0, 1), got 1.5" in refused.stderr
    assert not (tmp_path / "never.safetensors").exists()


def test_train_refuses_a_meaningless_weight_average_before_any_work(tmp_path):
    refused = run("train", "--data", "manifest:/nonexistent/cases.csv", "--out",
                  str(tmp_path / "never.safetensors"), "--average-last", "1")
    assert refused.returncode == 2
    assert "--average-last: must be 0 (off) or at least 2, got 1" in refused.stderr
    assert not (tmp_path / "never.safetensors").exists()


def test_train_from_a_model_file_runs_only_the_full_finetune(trained, tmp_path):
    from skinstation.inference.model_file import load_model_file

    folder, _ = trained
    out = tmp_path / "child.safetensors"
    result = run("train", "--data", f"manifest:{folder / 'cases.csv'}", "--split",
                 str(folder / "split.csv"), "--out", str(out), "--init-model",
                 str(folder / "m.safetensors"), "--full-epochs", "1", "--full-batch-size", "4",
                 "--size", "96", "--cache", str(tmp_path / "cache"))
    assert result.returncode == 0, result.stderr
    assert "starting from" in result.stderr and "(cli-test)" in result.stderr
    assert "[full fine-tune] epoch 1: loss" in result.stderr
    assert "[features view" not in result.stderr and "[head]" not in result.stderr
    parent, parent_state = load_model_file(folder / "m.safetensors")
    child, state = load_model_file(out)
    assert child.parent_version == child.training["init_model"] == "cli-test"
    assert child.preprocess == parent.preprocess  # --size 96 lost to the parent's own config
    assert [h["phase"] for h in child.training["history"]] == [3.0, 3.0]
    assert child.training["full_epochs"] == 1 and child.metrics["test"]["images"] > 0
    # the not-assessable statistics were refitted on the fine-tuned network's own features
    from skinstation.inference.assessability import STATE_PREFIX
    assert state[STATE_PREFIX + "mean"].shape == parent_state[STATE_PREFIX + "mean"].shape
    assert not state[STATE_PREFIX + "mean"].equal(parent_state[STATE_PREFIX + "mean"])
