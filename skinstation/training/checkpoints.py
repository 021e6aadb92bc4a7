"""Training state copies and atomic checkpoint files, shared by every training phase."""

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
    """Write a checkpoint atomically (temporary file, fsync, rename): never a torn file."""
    temporary = path.with_name(f".{path.name}.partial")
    torch.save(state, temporary)
    with open(temporary, "rb") as stream:
        os.fsync(stream.fileno())
    os.replace(temporary, path)
