"""Post-hoc calibration and operating points fitted on the validation split (never on test).

- :func:`fit_temperature`: one scalar T minimising validation NLL of ``softmax(logits / T)``.
- :func:`fit_referral_threshold`: the highest threshold on p(skin cancer) whose validation
  sensitivity still reaches the target (default 95%): every stricter threshold misses more.
- :func:`fit_rejection_threshold`: the out-of-distribution score's threshold at a stated
  false-rejection rate on in-distribution validation images.
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
    scores: np.ndarray, positive: np.ndarray, target_sensitivity: float
) -> dict[str, float]:
    """Highest threshold t with sensitivity(score >= t) >= target on these samples.

    With ``n`` positives it flags at least ``ceil(target × n)`` of them: the threshold is that
    positive's score. Ties at t are flagged too, so sensitivity can exceed the target only by
    tied scores.

    Args:
        scores: p(skin cancer) per sample.
        positive: True where the sample is a skin cancer.
        target_sensitivity: In (0, 1].

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
    needed = math.ceil(round(target_sensitivity * n_pos, 9))
    threshold = float(np.sort(scores[positive])[::-1][needed - 1])
    flagged = scores >= threshold
    negatives = ~positive
    return {
        "threshold": threshold,
        "target_sensitivity": float(target_sensitivity),
        "sensitivity": float(flagged[positive].mean()),
        "specificity": float((~flagged[negatives]).mean()) if negatives.any() else float("nan"),
        "positives": float(n_pos),
        "negatives": float(negatives.sum()),
    }


def fit_rejection_threshold(in_distribution_scores: np.ndarray, false_rejection: float) -> float:
    """Threshold above which an out-of-distribution score rejects an image.

    It is the ``1 - false_rejection`` quantile of the validation (in-distribution) scores, so
    at most that fraction of validation images would be rejected.
    """
    if not 0 <= false_rejection < 1:
        raise ValueError(f"false rejection rate must be in [0, 1), got {false_rejection}")
    return float(np.quantile(np.asarray(in_distribution_scores, np.float64),
                             1 - false_rejection, method="higher"))
