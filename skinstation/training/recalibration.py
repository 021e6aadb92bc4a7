"""Refitting a trained model's operating points on validation, without retraining."""

from __future__ import annotations

import dataclasses
import datetime as dt
import tempfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from skinstation.inference.assessability import STATISTICAL_METHODS
from skinstation.inference.classifier import Classifier, softmax
from skinstation.inference.model_file import ModelMetadata, load_model_file, save_model_file
from skinstation.inference.preprocessing import PreprocessConfig
from skinstation.inference.taxonomy import SKIN_CANCER, load_taxonomy
from skinstation.training.calibration import (
    fit_referral_threshold,
    fit_rejection_threshold,
    fit_temperature,
)
from skinstation.training.evaluation import run_model
from skinstation.training.pipeline import class_labels, evaluate_and_seal, fit_offsets
from skinstation.training.progress import Log, print_log
from skinstation.training.sources import load_source
from skinstation.training.splits import load_split


def recalibrate_model(model: Path, source: str, split_path: Path, output: Path,
                      min_sensitivity: dict[str, float], target_sensitivity: float,
                      eval_sources: Sequence[str] = (), report_dir: Path | None = None,
                      log: Log = print_log,
                      false_rejection: float | None = None,
                      assessability_method: str | None = None,
                      size: int | None = None) -> ModelMetadata:
    """Refit a trained model's operating points on validation, without retraining.

    Temperature, referral threshold and decision offsets are refitted on the validation split;
    the weights and the assessability statistics are kept (its threshold is refitted on
    validation when ``false_rejection`` is given, holding the validation cancers to the same
    rate, and its score switched to another method that
    uses the same stored statistics when ``assessability_method`` is). ``size`` changes the
    input size the network sees at inference (a network trained with random-scale crops can
    do better slightly above its training size); the not-assessable threshold is then refitted
    too, at its stored validation rejection rate, and the training size stays recorded in
    ``training``. Every other preprocessing parameter is kept as it is (the hair-removal
    kernel is in model-input pixels, so it then covers a slightly smaller part of the image).
    The model is then re-evaluated on the locked test split (and ``eval_sources``) and saved
    to ``output`` as a new version.
    """
    if false_rejection is not None and not 0 <= false_rejection < 1:
        raise ValueError(f"false rejection rate must be in [0, 1), got {false_rejection}")
    if assessability_method is not None and assessability_method not in STATISTICAL_METHODS:
        raise ValueError(f"unknown assessability method {assessability_method!r}")
    taxonomy = load_taxonomy()
    metadata, state = load_model_file(model)
    statistical = metadata.assessability.get("method") in STATISTICAL_METHODS
    if (false_rejection is not None or assessability_method is not None) and not statistical:
        # said now, not after the minutes-long validation pass
        raise ValueError(f"{model} has no assessability statistics to refit a threshold on")
    if size is not None and size != metadata.preprocess["size"]:
        log(f"input size {metadata.preprocess['size']} -> {size} px")
        preprocess = PreprocessConfig.from_dict({**metadata.preprocess, "size": size})
        metadata = dataclasses.replace(metadata, preprocess=preprocess.to_dict())
        if false_rejection is None and statistical:  # the features move with the input size
            false_rejection = float(metadata.assessability.get("false_rejection_target", 0.03))
    records, report = load_source(source)
    log(report.summary())
    split = load_split(split_path, records)
    val, test = split.select(records, "val"), split.select(records, "test")
    plain = dataclasses.replace(metadata, temperature=1.0, class_bias=[])
    with tempfile.TemporaryDirectory(prefix="recalibrate-") as scratch:
        # the uncalibrated copy lives outside ``output``, which may be the deployed model
        save_model_file(Path(scratch) / "plain.safetensors", state, plain)
        plain_classifier = Classifier.load(Path(scratch) / "plain.safetensors", warm_up=False)
    val_outputs = run_model(plain_classifier, val, log=log)
    assessability = dict(metadata.assessability)
    cancer = np.array([r.group(taxonomy) == SKIN_CANCER for r in val])
    if assessability_method is not None and false_rejection is None:
        false_rejection = float(assessability.get("false_rejection_target", 0.03))
    if false_rejection is not None:
        assess = plain_classifier.assessability
        if assessability_method is not None:
            assess.method = assessability["method"] = assessability_method
        scores = np.array(assess.scores(val_outputs.pooled, val_outputs.logits), np.float64)
        threshold = fit_rejection_threshold(scores, false_rejection, protected=cancer)
        assessability.update(
            threshold=threshold, false_rejection_target=false_rejection,
            val_false_rejection=float((scores > threshold).mean()),
            val_false_rejection_cancer=float((scores[cancer] > threshold).mean()))
        log(f"assessability threshold {threshold:.2f} at validation false rejection "
            f"{assessability['val_false_rejection']:.3f} "
            f"(cancers {assessability['val_false_rejection_cancer']:.3f})")
    temperature = fit_temperature(val_outputs.calibration_logits, class_labels(val, taxonomy))
    p_cancer = (softmax(val_outputs.calibration_logits, temperature) @ taxonomy.group_matrix())[
        :, taxonomy.groups.index(SKIN_CANCER)]
    shown = val_outputs.assessable
    if false_rejection is not None:  # the refitted threshold decides what the station rejects
        shown = scores <= assessability["threshold"]
    referral = fit_referral_threshold(p_cancer, cancer, target_sensitivity, assessable=shown)
    offsets = fit_offsets(val_outputs, taxonomy, temperature, min_sensitivity, log)
    created = dt.datetime.now(dt.UTC)
    training = {**metadata.training, "min_sensitivity": dict(min_sensitivity),
                "recalibrated_from": metadata.model_version}
    sealed = dataclasses.replace(
        metadata, model_version=f"{output.stem}-{created:%Y%m%dT%H%M%S}",
        created_at=created.isoformat(timespec="seconds"), temperature=temperature,
        referral=referral, class_bias=[float(o) for o in offsets], training=training,
        assessability=assessability)
    return evaluate_and_seal(output, state, sealed, test, eval_sources,
                             report_dir or Path(f"{output}.reports"), log)
