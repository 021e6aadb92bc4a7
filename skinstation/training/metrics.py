"""Classification metrics that stay honest on imbalanced, clustered medical data.

Balanced accuracy (mean per-class sensitivity), per-class sensitivity and specificity,
one-vs-rest AUC, confusion matrices, expected calibration error, and bootstrap confidence
intervals resampled by lesion/patient (images of one lesion are not independent).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from itertools import pairwise

import numpy as np


def confusion_matrix(truth: np.ndarray, predicted: np.ndarray, num_classes: int) -> np.ndarray:
    """Counts with rows = true class, columns = predicted class."""
    matrix = np.zeros((num_classes, num_classes), np.int64)
    np.add.at(matrix, (np.asarray(truth), np.asarray(predicted)), 1)
    return matrix


def sensitivities(matrix: np.ndarray) -> np.ndarray:
    """Per-class recall; NaN for a class absent from the truth."""
    support = matrix.sum(1).astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(support > 0, np.diag(matrix) / support, np.nan)


def specificities(matrix: np.ndarray) -> np.ndarray:
    """Per-class true-negative rate (one vs rest)."""
    total = matrix.sum()
    result = np.empty(len(matrix))
    for k in range(len(matrix)):
        negatives = total - matrix[k].sum()
        false_positives = matrix[:, k].sum() - matrix[k, k]
        result[k] = (negatives - false_positives) / negatives if negatives else np.nan
    return result


def balanced_accuracy(truth: np.ndarray, predicted: np.ndarray, num_classes: int) -> float:
    """Mean sensitivity over the classes present in ``truth``."""
    return float(np.nanmean(sensitivities(confusion_matrix(truth, predicted, num_classes))))


def binary_auc(positive: np.ndarray, scores: np.ndarray) -> float:
    """Area under the ROC curve (Mann-Whitney U with tie correction); NaN if one-class."""
    positive = np.asarray(positive, bool)
    n_pos, n_neg = int(positive.sum()), int((~positive).sum())
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    order = np.argsort(scores, kind="mergesort")
    ranks = np.empty(len(scores), np.float64)
    sorted_scores = np.asarray(scores)[order]
    i = 0
    while i < len(sorted_scores):
        j = i
        while j + 1 < len(sorted_scores) and sorted_scores[j + 1] == sorted_scores[i]:
            j += 1
        ranks[order[i : j + 1]] = (i + j) / 2 + 1
        i = j + 1
    return float((ranks[positive].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def roc_curve(
    positive: np.ndarray, scores: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """False-positive rates, true-positive rates and thresholds (descending)."""
    positive = np.asarray(positive, bool)
    order = np.argsort(-np.asarray(scores), kind="mergesort")
    sorted_scores, sorted_pos = np.asarray(scores)[order], positive[order]
    distinct = np.r_[np.where(np.diff(sorted_scores))[0], len(sorted_scores) - 1]
    tps = np.cumsum(sorted_pos)[distinct]
    fps = (distinct + 1) - tps
    tpr = np.r_[0.0, tps / max(positive.sum(), 1)]
    fpr = np.r_[0.0, fps / max((~positive).sum(), 1)]
    return fpr, tpr, np.r_[np.inf, sorted_scores[distinct]]


def expected_calibration_error(probs: np.ndarray, truth: np.ndarray, bins: int = 15) -> float:
    """Top-label ECE: sum over equal-width confidence bins of |accuracy - confidence| × share."""
    confidence = probs.max(1)
    correct = probs.argmax(1) == truth
    edges = np.linspace(0.0, 1.0, bins + 1)
    ece = 0.0
    for low, high in pairwise(edges):
        mask = (confidence > low) & (confidence <= high)
        if mask.any():
            ece += mask.mean() * abs(correct[mask].mean() - confidence[mask].mean())
    return float(ece)


def reliability_bins(
    probs: np.ndarray, truth: np.ndarray, bins: int = 15
) -> list[dict[str, float]]:
    """Per-bin confidence, accuracy and count for reliability diagrams."""
    confidence = probs.max(1)
    correct = probs.argmax(1) == truth
    edges = np.linspace(0.0, 1.0, bins + 1)
    rows = []
    for low, high in pairwise(edges):
        mask = (confidence > low) & (confidence <= high)
        rows.append({
            "low": float(low), "high": float(high), "count": int(mask.sum()),
            "confidence": float(confidence[mask].mean()) if mask.any() else float("nan"),
            "accuracy": float(correct[mask].mean()) if mask.any() else float("nan"),
        })
    return rows


def bootstrap_ci(
    statistic: Callable[[np.ndarray], float],
    units: Sequence[str],
    n_boot: int = 1000,
    seed: int = 0,
    level: float = 0.95,
) -> tuple[float, float]:
    """Percentile bootstrap interval of ``statistic(indices)`` resampling whole units.

    Args:
        statistic: Maps an array of sample indices (with repeats) to a number (NaN allowed).
        units: Unit (lesion/patient) of each sample; units are drawn with replacement.
        n_boot: Number of resamples.
        seed: Random seed.
        level: Coverage of the interval.

    Returns:
        (low, high); NaN bounds if every resample was undefined.
    """
    unit_ids = np.unique(np.asarray(units), return_inverse=True)[1]
    members = [np.flatnonzero(unit_ids == u) for u in range(unit_ids.max() + 1)]
    rng = np.random.default_rng(seed)
    values = []
    for _ in range(n_boot):
        drawn = rng.integers(0, len(members), len(members))
        value = statistic(np.concatenate([members[u] for u in drawn]))
        if not np.isnan(value):
            values.append(value)
    if not values:
        return float("nan"), float("nan")
    tail = (1 - level) / 2 * 100
    low, high = np.percentile(values, [tail, 100 - tail])
    return float(low), float(high)
