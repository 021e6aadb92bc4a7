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

    def __init__(self, labels: np.ndarray, num_classes: int, label_smoothing: float = 0.0,
                 visits: np.ndarray | None = None) -> None:
        super().__init__()
        self.register_buffer("log_prior", torch.tensor(log_prior(labels, num_classes, visits),
                                                       dtype=torch.float32))
        self.label_smoothing = label_smoothing

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Mean adjusted cross-entropy."""
        return nn.functional.cross_entropy(logits + self.log_prior, target,
                                           label_smoothing=self.label_smoothing)


def class_counts(labels: np.ndarray, num_classes: int,
                 visits: np.ndarray | None = None) -> np.ndarray:
    """How often training meets each class: label counts, or visits per image summed.

    With ``visits`` (expected visits per image and epoch, as a re-learning fine-tune replays
    the base data at 0.25 and visits each confirmed case 4 times) a class counts as often as
    the training stream shows it, not as often as it is listed. A class never seen counts once.
    """
    weights = None if visits is None else np.asarray(visits, np.float64)
    if weights is not None and weights.shape != np.shape(labels):
        raise ValueError(f"visits has shape {weights.shape}, labels {np.shape(labels)}")
    counts = np.bincount(labels, weights=weights, minlength=num_classes).astype(np.float64)
    return np.maximum(counts, 1.0)


def log_prior(labels: np.ndarray, num_classes: int,
              visits: np.ndarray | None = None) -> np.ndarray:
    """Log class frequencies of the training stream (see :func:`class_counts`)."""
    counts = class_counts(labels, num_classes, visits)
    return np.log(counts / counts.sum())


def training_loss(labels: np.ndarray, num_classes: int, mode: str,
                  label_smoothing: float = 0.0, visits: np.ndarray | None = None) -> nn.Module:
    """The imbalance-aware loss a class-weighting mode names (see :func:`class_weights`).

    ``visits`` weights each image's label by how often an epoch visits it, so the prior the
    loss corrects (or the weights it gives) is that of the images training actually sees.
    """
    if mode == "logit_adjusted":
        return LogitAdjustedLoss(labels, num_classes, label_smoothing, visits)
    return nn.CrossEntropyLoss(weight=class_weights(labels, num_classes, mode, visits),
                               label_smoothing=label_smoothing)


def class_weights(labels: np.ndarray, num_classes: int, mode: str,
                  visits: np.ndarray | None = None) -> torch.Tensor:
    """Per-class loss weights: ``balanced`` (1/n), ``sqrt`` (1/sqrt n) or ``none``; mean 1.

    ``logit_adjusted`` also gives unit weights: its loss corrects the prior instead. ``n`` is
    the class's count in the training stream (:func:`class_counts`).
    """
    counts = class_counts(labels, num_classes, visits)
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


def per_sample_loss(loss_fn: nn.Module, logits: torch.Tensor,
                    target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-sample losses and weights whose ratio of sums is ``loss_fn``'s mean.

    ``sum(losses) / sum(weights)`` over any partition of a batch (e.g. the shares of
    data-parallel processes) gives the loss of the whole batch, as PyTorch's weighted mean
    does (``reduction="mean"`` divides by the sum of the targets' class weights).

    Raises:
        TypeError: ``loss_fn`` is not one of :func:`training_loss`'s losses.
    """
    if isinstance(loss_fn, LogitAdjustedLoss):
        losses = nn.functional.cross_entropy(logits + loss_fn.log_prior, target,
                                             label_smoothing=loss_fn.label_smoothing,
                                             reduction="none")
        return losses, torch.ones_like(losses)
    if isinstance(loss_fn, nn.CrossEntropyLoss):
        weight = loss_fn.weight
        losses = nn.functional.cross_entropy(logits, target, weight=weight,
                                             label_smoothing=loss_fn.label_smoothing,
                                             reduction="none")
        weights = weight[target] if weight is not None else torch.ones_like(losses)
        return losses, weights
    raise TypeError(f"no per-sample form for {type(loss_fn).__name__}")
