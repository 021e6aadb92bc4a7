"""Evaluate a model file on any labelled source, through the station's own inference path.

:func:`run_model` classifies every record exactly as the station would (the model file's
preprocessing, temperature, thresholds) and keeps the raw outputs; :func:`compute_metrics`
turns them into the report's numbers: balanced accuracy, per-class sensitivity/specificity/AUC
with lesion-level bootstrap CIs, confusion matrix, calibration, triage and decision-rule
figures, the referral operating point, and subgroup results.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from skinstation.inference.assessability import image_problem
from skinstation.inference.classifier import Classifier
from skinstation.inference.decision import INDETERMINATE
from skinstation.inference.preprocessing import decode_image, preprocess
from skinstation.inference.taxonomy import SKIN_CANCER, Taxonomy
from skinstation.training.calibration import softmax
from skinstation.training.metrics import (
    binary_auc,
    bootstrap_ci,
    confusion_matrix,
    expected_calibration_error,
    reliability_bins,
    roc_curve,
    sensitivities,
    specificities,
)
from skinstation.training.progress import Log, Progress, print_log
from skinstation.training.sources import Record

# On 2 CPU cores MobileNetV2 runs *slower* per image in larger batches (the activations of a
# batch at 112x112 no longer fit in cache): 52 images/s one at a time, 31 in batches of 32
# (bench/bench_predict.py measures each size).
EVAL_BATCH_SIZE = 1


@dataclass
class ModelOutputs:
    """Raw outputs of a model over a set of records (enough to recompute every metric)."""

    records: list[Record]
    logits: np.ndarray
    probs: np.ndarray
    decisions: list[str]
    referral: np.ndarray
    assessable: np.ndarray
    assessability_scores: np.ndarray
    pooled: np.ndarray
    predicted: np.ndarray | None = None
    log_prior: np.ndarray | None = None

    @property
    def calibration_logits(self) -> np.ndarray:
        """The logits temperature and probabilities apply to (training prior added back)."""
        return self.logits if self.log_prior is None else self.logits + self.log_prior


def run_model(classifier: Classifier, records: Sequence[Record],
              batch_size: int = EVAL_BATCH_SIZE,
              log: Log = print_log,
              transform: Callable[[np.ndarray], np.ndarray] | None = None) -> ModelOutputs:
    """Classify every record (decode + preprocess + network + decision), in batches.

    ``transform`` (e.g. a robustness shift) changes each decoded image before the station's
    preprocessing.
    """
    logits, pooled, predictions = [], [], []
    progress = Progress("evaluate", len(records), log)
    config = classifier.preprocess_config
    for start in range(0, len(records), batch_size):
        chunk = records[start : start + batch_size]
        images = [decode_image(r.image_path) for r in chunk]
        if transform is not None:
            images = [transform(image) for image in images]
        batch = np.stack([preprocess(image, config) for image in images])
        chunk_logits, chunk_pooled = classifier.forward(batch)
        logits.append(chunk_logits)
        pooled.append(chunk_pooled)
        problems = [image_problem(image) for image in images]
        predictions += classifier.predictions_from_outputs(chunk_logits, chunk_pooled,
                                                           problems=problems)
        progress.update(len(chunk))
    all_logits = np.concatenate(logits)
    return ModelOutputs(
        records=list(records), logits=all_logits,
        probs=classifier.probabilities(all_logits),
        decisions=[p.decision for p in predictions],
        referral=np.array([p.referral for p in predictions]),
        assessable=np.array([p.assessable for p in predictions]),
        assessability_scores=np.array([np.nan if p.assessability_score is None
                                       else p.assessability_score for p in predictions]),
        pooled=np.concatenate(pooled),
        predicted=classifier.predicted_classes(classifier.probabilities(all_logits)),
        log_prior=classifier.log_prior,
    )


def _rate(mask: np.ndarray, where: np.ndarray) -> float:
    return float(mask[where].mean()) if where.any() else float("nan")


def _ci(stat: Any, units: list[str], n_boot: int) -> list[float]:
    return list(bootstrap_ci(stat, units, n_boot=n_boot))


def age_band(age: str) -> str:
    """Map an age string to a 20-year band (``unknown`` if missing)."""
    try:
        value = float(age)
    except ValueError:
        return "unknown"
    low = int(value // 20 * 20)
    return f"{low}-{low + 19}"


def compute_metrics(outputs: ModelOutputs, taxonomy: Taxonomy, temperature: float,
                    referral_threshold: float | None, n_boot: int = 1000) -> dict[str, Any]:
    """Every number of the evaluation report (JSON-ready).

    Class metrics use the model's predicted class (argmax of the calibrated probabilities,
    plus its validation-fitted decision offsets if any); triage metrics use the true
    group (a PAD-UFES-20 SCC counts as skin cancer); CIs resample lesions/patients.
    """
    classes, k = list(taxonomy.classes), len(taxonomy.classes)
    records = outputs.records
    truth = np.array([classes.index(r.dx) for r in records])
    probs = outputs.probs
    predicted = outputs.predicted if outputs.predicted is not None else probs.argmax(1)
    units = [f"{r.source}:{r.split_key}" for r in records]
    matrix = confusion_matrix(truth, predicted, k)
    present = [c for c in range(k) if (truth == c).any()]

    def balanced(idx: np.ndarray) -> float:
        sens = sensitivities(confusion_matrix(truth[idx], predicted[idx], k))
        return float(np.nanmean(sens[present]))

    per_class = {}
    sens, spec = sensitivities(matrix), specificities(matrix)
    for c, code in enumerate(classes):
        is_c = truth == c
        per_class[code] = {
            "support": int(is_c.sum()), "sensitivity": float(sens[c]),
            "specificity": float(spec[c]), "auc": binary_auc(is_c, probs[:, c]),
            "sensitivity_ci": _ci(lambda i, c=c: _rate(predicted[i] == c, truth[i] == c),
                                  units, n_boot) if is_c.any() else [float("nan")] * 2,
        }
    everything = np.arange(len(records))
    groups = probs @ taxonomy.group_matrix()
    cancer = np.array([r.group(taxonomy) == SKIN_CANCER for r in records])
    p_cancer = groups[:, taxonomy.groups.index(SKIN_CANCER)]
    true_group = np.array([taxonomy.groups.index(r.group(taxonomy)) for r in records])
    decisions = np.array(outputs.decisions)
    decided = np.isin(decisions, taxonomy.groups)
    decided_group = np.array([taxonomy.groups.index(d) if d in taxonomy.groups else -1
                              for d in decisions])
    rule_cancer = decisions == SKIN_CANCER
    fpr, tpr, _ = roc_curve(cancer, p_cancer)
    metrics: dict[str, Any] = {
        "images": len(records), "units": len(set(units)),
        "class_counts": {c: int((truth == i).sum()) for i, c in enumerate(classes)},
        "balanced_accuracy": balanced(everything),
        "balanced_accuracy_ci": _ci(balanced, units, n_boot),
        "balanced_accuracy_argmax": float(np.nanmean(sensitivities(confusion_matrix(
            truth, probs.argmax(1), k))[present])),
        "accuracy": float((predicted == truth).mean()),
        "per_class": per_class,
        "confusion_matrix": matrix.tolist(),
        "temperature": temperature,
        "ece": expected_calibration_error(probs, truth),
        "ece_uncalibrated": expected_calibration_error(softmax(outputs.calibration_logits),
                                                       truth),
        "reliability": reliability_bins(probs, truth),
        "triage": {
            "cancer_auc": binary_auc(cancer, p_cancer),
            "cancer_count": int(cancer.sum()),
            "rule_cancer_sensitivity": _rate(rule_cancer, cancer),
            "rule_cancer_specificity": _rate(~rule_cancer, ~cancer),
            "group_confusion_matrix": confusion_matrix(
                true_group, groups.argmax(1), len(taxonomy.groups)).tolist(),
            "roc": {"fpr": fpr.tolist(), "tpr": tpr.tolist()},
        },
        "decision_rule": {
            "coverage": float(decided.mean()),
            "indeterminate": float((decisions == INDETERMINATE).mean()),
            "not_assessable": float((~outputs.assessable).mean()),
            "accuracy_on_decided": _rate(decided_group == true_group, decided),
        },
    }
    if referral_threshold is not None:
        # as the station shows it: a not-assessable image shows no flag (retake instead)
        flagged = np.asarray(outputs.referral, bool)
        rejected = ~np.asarray(outputs.assessable, bool)
        metrics["referral"] = {
            "threshold": referral_threshold,
            **_referral_figures(flagged, cancer, units, n_boot),
            "referred_fraction": float(flagged.mean()),
            "not_assessable": {**_referral_figures(rejected, cancer, units, n_boot),
                               "fraction": float(rejected.mean())},
            "flagged_or_not_assessable": _referral_figures(flagged | rejected, cancer, units,
                                                           n_boot),
            "threshold_only": _referral_figures(p_cancer >= referral_threshold, cancer, units,
                                                n_boot),
        }
        metrics["subgroups"] = subgroup_metrics(records, cancer, flagged, truth, predicted,
                                                present, k)
    return metrics


def _referral_figures(flagged: np.ndarray, cancer: np.ndarray, units: list[str],
                      n_boot: int) -> dict[str, Any]:
    """Sensitivity (flagged cancers) and specificity (unflagged others), with lesion CIs."""
    return {
        "sensitivity": _rate(flagged, cancer), "specificity": _rate(~flagged, ~cancer),
        "sensitivity_ci": _ci(lambda i: _rate(flagged[i], cancer[i]), units, n_boot),
        "specificity_ci": _ci(lambda i: _rate(~flagged[i], ~cancer[i]), units, n_boot),
        "cancers": int(cancer.sum()), "flagged_cancers": int((flagged & cancer).sum()),
    }


def subgroup_metrics(records: Sequence[Record], cancer: np.ndarray, flagged: np.ndarray,
                     truth: np.ndarray, predicted: np.ndarray, present: list[int],
                     k: int) -> dict[str, dict[str, dict[str, float]]]:
    """Referral sensitivity/specificity and balanced accuracy by sex, age band, site, skin type."""
    keys = {
        "sex": lambda r: r.attributes.get("sex") or "unknown",
        "age_band": lambda r: age_band(r.attributes.get("age", "")),
        "site": lambda r: r.attributes.get("localization") or "unknown",
        "fitzpatrick": lambda r: r.attributes.get("fitzpatrick") or "unknown",
    }
    result: dict[str, dict[str, dict[str, float]]] = {}
    for name, key in keys.items():
        values = np.array([key(r) for r in records])
        if set(values) == {"unknown"}:
            continue
        rows = {}
        for value in sorted(set(values)):
            where = values == value
            sens = sensitivities(confusion_matrix(truth[where], predicted[where], k))
            rows[str(value)] = {
                "images": int(where.sum()), "cancers": int(cancer[where].sum()),
                "referral_sensitivity": _rate(flagged[where], cancer[where]),
                "referral_specificity": _rate(~flagged[where], ~cancer[where]),
                "balanced_accuracy": float(np.nanmean(sens[present])),
            }
        result[name] = rows
    return result
