"""Imbalance-aware losses: class-weighted cross-entropy and logit adjustment."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

CLASS_WEIGHTINGS = ("balanced", "sqrt", "none", "logit_adjusted")


class LogitAdjustedLoss(nn.Module):
    """Cross-entropy on ``logits + log(prior)`` (Menon et al., ICLR 2021).

    The network learns logits whose argmax is Bayes-optimal for the *balanced* error, without
    the noisy gradients of large per-class weights (a dermatofibroma weighs 58 naevi under
    ``balanced`` weighting).
    """

    def __init__(self, labels: np.ndarray, num_classes: int, label_smoothing: float = 0.0) -> None:
        super().__init__()
        counts = np.maximum(np.bincount(labels, minlength=num_classes), 1).astype(np.float64)
        self.register_buffer("log_prior", torch.tensor(np.log(counts / counts.sum()),
                                                       dtype=torch.float32))
        self.label_smoothing = label_smoothing

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Mean adjusted cross-entropy."""
        return nn.functional.cross_entropy(logits + self.log_prior, target,
                                           label_smoothing=self.label_smoothing)


def training_loss(labels: np.ndarray, num_classes: int, mode: str,
                  label_smoothing: float = 0.0) -> nn.Module:
    """The imbalance-aware loss a class-weighting mode names (see :func:`class_weights`)."""
    if mode == "logit_adjusted":
        return LogitAdjustedLoss(labels, num_classes, label_smoothing)
    return nn.CrossEntropyLoss(weight=class_weights(labels, num_classes, mode),
                               label_smoothing=label_smoothing)


def class_weights(labels: np.ndarray, num_classes: int, mode: str) -> torch.Tensor:
    """Per-class loss weights: ``balanced`` (1/n), ``sqrt`` (1/sqrt n) or ``none``; mean 1.

    ``logit_adjusted`` also gives unit weights: its loss corrects the prior instead.
    """
    counts = np.bincount(labels, minlength=num_classes).astype(np.float64)
    counts = np.maximum(counts, 1.0)
    if mode == "balanced":
        weights = 1.0 / counts
    elif mode == "sqrt":
        weights = 1.0 / np.sqrt(counts)
    elif mode in ("none", "logit_adjusted"):
        weights = np.ones(num_classes)
    else:
        raise ValueError(f"unknown class weighting {mode!r}")
    weights = weights / (weights * counts).sum() * counts.sum()
    return torch.tensor(weights, dtype=torch.float32)
