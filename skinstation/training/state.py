"""A network's training state, shared by every training phase.

Copies of its weights and statistics (:func:`snapshot`), atomic checkpoint files
(:func:`save_checkpoint`), and its train mode with BatchNorm statistics kept frozen
(:func:`train_mode`).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch
from torch import nn


def snapshot(module: nn.Module) -> dict[str, torch.Tensor]:
    """A detached copy of a module's state (weights and BatchNorm statistics)."""
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


def save_checkpoint(path: Path, state: dict[str, Any]) -> None:
    """Write a checkpoint atomically (temporary file, fsync, rename): never a torn file.

    The file is the owner's only (0600): it holds a model trained on patient images.
    """
    temporary = path.with_name(f".{path.name}.partial")
    os.close(os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600))
    os.chmod(temporary, 0o600)
    torch.save(state, temporary)
    with open(temporary, "rb") as stream:
        os.fsync(stream.fileno())
    os.replace(temporary, path)


def train_mode(module: nn.Module, freeze_batchnorm: bool) -> None:
    """Put ``module`` in training mode, optionally keeping BatchNorm running statistics.

    Args:
        module: The network (or part of it) about to take optimiser steps.
        freeze_batchnorm: Keep every ``BatchNorm2d`` in eval mode, so its running mean and
            variance stay as they are (small CPU batches cannot estimate them); the affine
            parameters still train.
    """
    module.train()
    if freeze_batchnorm:
        for child in module.modules():
            if isinstance(child, nn.BatchNorm2d):
                child.eval()
