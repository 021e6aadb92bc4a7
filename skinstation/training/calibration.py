"""Post-hoc calibration and operating points fitted on the validation split (never on test).

- :func:`fit_temperature`: one scalar T minimising validation NLL of ``softmax(logits / T)``.
- :func:`fit_referral_threshold`: the highest threshold on p(skin cancer) whose validation
  sensitivity still reaches the target (default 95%): every stricter threshold misses more.
- :func:`fit_rejection_threshold`: the out-of-distribution score's threshold at a stated
  false-rejection rate on in-distribution validation images, overall and on their cancers.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from skinstation.inference.classifier import softmax

__all__ = [
    "fit_referral_threshold", "fit_rejection_threshold", "fit_temperature", "softmax",
]


def fit_temperature(logits: np.ndarray, labels: np.ndarray) -> float:
    """Fit the temperature minimising negative log-likelihood (LBFGS on log T).

    Returns:
        T > 0 (T > 1 softens over-confident outputs).
    """
    x = torch.tensor(logits, dtype=torch.float64)
    y = torch.tensor(labels, dtype=torch.int64)
    log_t = torch.zeros(1, dtype=torch.float64, requires_grad=True)
    optimiser = torch.optim.LBFGS([log_t], lr=0.5, max_iter=200, line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        optimiser.zero_grad()
        loss = torch.nn.functional.cross_entropy(x / log_t.exp(), y)
        loss.backward()
        return loss

    optimiser.step(closure)
    temperature = float(log_t.detach().exp())
    if not math.isfinite(temperature) or temperature <= 0:
        raise ValueError(f"temperature fit diverged ({temperature})")
    return temperature


def fit_referral_threshold(
    scores: np.ndarray, positive: np.ndarray, target_sensitivity: float,
    assessable: np.ndarray | None = None,
) -> dict[str, float]:
    """Highest threshold t with sensitivity(score >= t) >= target on these samples.

    With ``n`` positives it flags at least ``ceil(target × n)`` of them: the threshold is that
    positive's score. Ties at t are flagged too, so sensitivity can exceed the target only by
    tied scores.

    The sensitivity is the one the station shows: an image it rejects as not assessable
    shows no referral flag, so a not-assessable cancer counts as missed (``assessable``).
    When too many cancers are not assessable to reach the target, every assessable one is
    flagged and ``reachable`` is 0.

    Args:
        scores: p(skin cancer) per sample.
        positive: True where the sample is a skin cancer.
        target_sensitivity: In (0, 1].
        assessable: False where the station rejects the image (all assessable if None).

    Returns:
        ``threshold``, ``target_sensitivity`` and the ``sensitivity`` / ``specificity`` reached.

    Raises:
        ValueError: If there is no positive sample or the target is out of range.
    """
    if not 0 < target_sensitivity <= 1:
        raise ValueError(f"target sensitivity must be in (0, 1], got {target_sensitivity}")
    scores, positive = np.asarray(scores, np.float64), np.asarray(positive, bool)
    n_pos = int(positive.sum())
    if n_pos == 0:
        raise ValueError("cannot fit a referral threshold without positive (cancer) samples")
    ok = np.ones(len(scores), bool) if assessable is None else np.asarray(assessable, bool)
    needed = math.ceil(round(target_sensitivity * n_pos, 9))
    candidates = np.sort(scores[positive & ok])[::-1]
    reachable = len(candidates) >= needed
    if not len(candidates):
        raise ValueError("cannot fit a referral threshold: no assessable cancer sample")
    threshold = float(candidates[needed - 1] if reachable else candidates[-1])
    flagged = (scores >= threshold) & ok
    negatives = ~positive
    return {
        "threshold": threshold,
        "target_sensitivity": float(target_sensitivity),
        "reachable": float(reachable),
        "not_assessable_cancers": float((positive & ~ok).sum()),
        "sensitivity": float(flagged[positive].mean()),
        "specificity": float((~flagged[negatives]).mean()) if negatives.any() else float("nan"),
        "positives": float(n_pos),
        "negatives": float(negatives.sum()),
    }


def fit_rejection_threshold(in_distribution_scores: np.ndarray, false_rejection: float,
                            protected: np.ndarray | None = None) -> float:
    """Threshold above which an out-of-distribution score rejects an image.

    It is the ``1 - false_rejection`` quantile of the validation (in-distribution) scores, so
    at most that fraction of validation images would be rejected. With ``protected`` (the
    validation skin cancers) it is also at least that quantile of the protected images'
    scores, so no more than the same fraction of *them* is rejected either: cancers are rare
    and look less like the bulk of the training data, and an overall rate alone let the check
    reject 12.7% of one candidate's HAM10000 test cancers (3.7% of all its test images), each
    of them a cancer the station then showed no referral flag for.

    Args:
        in_distribution_scores: Scores of the validation images (higher = less typical).
        false_rejection: Largest fraction of validation images (and of the protected ones)
            the threshold may reject, in [0, 1).
        protected: True for the images whose own rejection rate is held to
            ``false_rejection`` too (None or no True: the overall rate only).

    Raises:
        ValueError: If the rate is out of range or ``protected`` does not match the scores.
    """
    if not 0 <= false_rejection < 1:
        raise ValueError(f"false rejection rate must be in [0, 1), got {false_rejection}")
    scores = np.asarray(in_distribution_scores, np.float64)
    threshold = float(np.quantile(scores, 1 - false_rejection, method="higher"))
    if protected is None:
        return threshold
    mask = np.asarray(protected, bool)
    if mask.shape != scores.shape:
        raise ValueError(f"protected mask has shape {mask.shape}, scores {scores.shape}")
    if not mask.any():
        return threshold
    return max(threshold, float(np.quantile(scores[mask], 1 - false_rejection,
                                            method="higher")))


def fit_decision_offsets(
    probs: np.ndarray, labels: np.ndarray, min_sensitivity: dict[int, float],
    grid: np.ndarray | None = None, rounds: int = 0, min_gain: float = 0.002,
) -> np.ndarray:
    """Per-class offsets on log-probabilities for a cost-sensitive fine-class decision.

    Starting from plain argmax, the offsets of the protected classes are raised until each
    reaches its minimum validation sensitivity (missing a melanoma costs more than a false
    alarm). With ``rounds`` > 0, coordinate ascent then adjusts every offset on ``grid`` while
    balanced accuracy improves by at least ``min_gain`` and the minimums still hold (if a
    minimum cannot be reached, the protected class keeps at least the offset it was raised
    to). Fitted on validation only.

    The ascent is off by default (``rounds=0``: only the protected classes move). On the
    HAM10000 validation split (about 20 images of df and of vasc) it overfitted: 5-fold
    lesion-grouped cross-validation scored 0.673 balanced accuracy with 3 rounds against 0.699
    with none (``bench/bench_site_prior.py``).

    Args:
        probs: Calibrated validation probabilities (N, K).
        labels: True class indices (N,).
        min_sensitivity: Class index → minimum sensitivity on these samples.
        grid: Candidate offsets (default -1.5..1.5 in steps of 0.1).
        rounds: Coordinate-ascent passes over every class (0 = raise protected classes only).
        min_gain: Smallest balanced-accuracy gain that moves an offset.

    Returns:
        Offsets (K,); zeros if no constraint is given (and no ascent round moved one).
    """
    from skinstation.inference.classifier import predicted_classes
    from skinstation.training.metrics import confusion_matrix, sensitivities

    k = probs.shape[1]
    grid = np.round(np.arange(-1.5, 1.51, 0.1), 2) if grid is None else grid
    offsets = np.zeros(k)

    def evaluate(candidate: np.ndarray) -> tuple[bool, float]:
        sens = sensitivities(confusion_matrix(labels, predicted_classes(probs, candidate), k))
        feasible = all(sens[c] >= target for c, target in min_sensitivity.items())
        return feasible, float(np.nanmean(sens))

    for cls, _target in min_sensitivity.items():
        for value in np.round(np.arange(0.0, 3.01, 0.05), 2):
            offsets[cls] = value
            sens = sensitivities(confusion_matrix(labels, predicted_classes(probs, offsets), k))
            if sens[cls] >= min_sensitivity[cls]:
                break
    raised = offsets.copy()
    feasible, best = evaluate(offsets)
    for _ in range(rounds):
        moved = False
        for cls in range(k):
            for value in grid:
                if not feasible and cls in min_sensitivity and value < raised[cls]:
                    continue  # never trade a protected class away while its minimum is unmet
                candidate = offsets.copy()
                candidate[cls] = value
                ok, score = evaluate(candidate)
                better = score > best + min_gain
                if (ok and (better or not feasible)) or (not ok and not feasible and better):
                    offsets, best, feasible, moved = candidate, score, ok, True
        if not moved:
            break
    return offsets
