"""The gate's figures of a model: stored ones are reused only when they are of today's form."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from skinstation.engine.retraining import service
from skinstation.inference.model_file import load_model_file, save_model_file
from skinstation.training.sources import load_manifest

REFERRAL = {"sensitivity": 0.963, "specificity": 0.616, "threshold": 0.177}
STORED = "stored in the model file (built on this locked split)"


@pytest.mark.parametrize(("referral", "origin"), [
    # sealed before the referral was reported as the station shows it: evaluated again
    (REFERRAL, "evaluated by this job"),
    # today's form (the station's figure, with the threshold-alone one beside it): reused
    ({**REFERRAL, "sensitivity": 0.947, "threshold_only": dict(REFERRAL)}, STORED),
])
def test_stored_figures_are_reused_only_in_the_form_the_gate_compares(
        tiny_model: Path, tiny_manifest: Path, tmp_path: Path,
        referral: dict[str, Any], origin: str) -> None:
    records, _ = load_manifest(tiny_manifest)
    test = records[:3]  # real images: an evaluation really runs
    metadata, state = load_model_file(tiny_model)
    split_path = tmp_path / "split.csv"
    split_path.write_text("image_id,split\n")
    stored = {"images": 3, "balanced_accuracy": 0.12345, "referral": referral}
    model = tmp_path / "current.safetensors"
    save_model_file(model, state, dataclasses.replace(
        metadata, metrics={"test": stored}, data_fingerprint="records:f0f0",
        training={**metadata.training, "split": str(split_path)}))
    metrics, why = service.locked_test_metrics(
        model, split_path, SimpleNamespace(records_fingerprint="f0f0"), test,
        log=lambda message: None)
    assert why == origin
    if origin == STORED:
        assert metrics == stored
    else:  # the job's own evaluation, in today's form
        assert metrics["images"] == 3 and metrics["balanced_accuracy"] != 0.12345
        assert "threshold_only" in metrics["referral"]
