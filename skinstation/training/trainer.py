"""Transfer learning on 2 CPU cores: cached trunk features, a head, then a fine-tuned tail.

Phases:
1. **features**: the ImageNet trunk (MobileNetV2 blocks 0-13) runs once over ``views``
   augmented copies of every training image and one clean copy of every validation image.
2. **head**: with the tail frozen, its pooled 1280-d features are computed once per view and a
   linear softmax head is trained on them (class-weighted cross-entropy).
3. **fine-tune**: the tail (blocks 14-18) and head are trained together on the cached trunk
   features; after every epoch the validation balanced accuracy decides which state is kept,
   and a checkpoint is written atomically so an interrupted run resumes at the next epoch.
4. **full fine-tune** (optional, ``full_epochs``): every block from ``full_from_block`` on
   trains on freshly augmented images (:mod:`skinstation.training.full_finetune`).

Training can also start from an existing model's weights (``initial_state``): phases 1-3 are
then skipped and only the full fine-tune runs. With ``head_epochs`` and ``finetune_epochs``
both 0 they are skipped too and the whole network trains end to end from ImageNet (the
recipe of ``bench/bench_baseline.py``'s plain fine-tune, done with the station's
preprocessing, augmentation, loss and operating points).

Everything is seeded; on the same machine the same data and config give the same weights.
"""

from __future__ import annotations

import dataclasses
import hashlib
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from skinstation.inference.network import Tail, Trunk, build_network, get_architecture
from skinstation.inference.preprocessing import PreprocessConfig
from skinstation.training.augment import COLOUR_ROBUST, AugmentConfig
from skinstation.training.features import _key, prepared_images, trunk_feature_views
from skinstation.training.full_finetune import LoopContext, finetune_network, network_outputs
from skinstation.training.losses import (  # noqa: F401  (re-exported)
    CLASS_WEIGHTINGS,
    LogitAdjustedLoss,
    class_weights,
    training_loss,
)
from skinstation.training.metrics import balanced_accuracy
from skinstation.training.progress import Log, Progress, format_seconds, print_log
from skinstation.training.sources import Record
from skinstation.training.state import snapshot  # noqa: F401  (re-exported)
from skinstation.training.tail_finetune import (  # noqa: F401  (flip_features re-exported)
    average_if_better,
    finetune_tail,
    flip_features,
    tail_logits,
)


@dataclass
class TrainConfig:
    """Training hyper-parameters (stored in the model file's ``training`` field)."""

    architecture: str = "mobilenet_v2"
    preprocess: PreprocessConfig = field(default_factory=PreprocessConfig)
    augment: AugmentConfig = field(default_factory=lambda: COLOUR_ROBUST)
    views: int = 4
    head_views: int = 2
    trunk_blocks: int = 14
    freeze_batchnorm: bool = False
    head_epochs: int = 30
    finetune_epochs: int = 6
    batch_size: int = 64
    head_lr: float = 3e-3
    finetune_lr: float = 5e-4
    weight_decay: float = 0.02
    class_weighting: str = "balanced"
    label_smoothing: float = 0.0
    feature_flips: bool = False
    average_last: int = 0
    full_epochs: int = 0
    full_lr: float = 1e-4
    full_batch_size: int = 8
    full_from_block: int = 0
    full_batchnorm_stats: bool = False
    full_base_visits: float = 1.0
    full_case_visits: float = 1.0
    seed: int = 42
    threads: int = 2

    def __post_init__(self) -> None:
        # checked here, not after half an hour of feature caching (recipes also arrive from
        # model files, when the engine retrains a deployed model's successor)
        if self.class_weighting not in CLASS_WEIGHTINGS:
            raise ValueError(f"unknown class weighting {self.class_weighting!r} "
                             f"(one of {', '.join(CLASS_WEIGHTINGS)})")
        if self.average_last < 0 or self.average_last == 1:
            raise ValueError("average_last must be 0 (off) or at least 2 epochs, "
                             f"got {self.average_last}")
        if self.full_epochs < 0 or self.full_batch_size < 2 or self.full_from_block < 0:
            raise ValueError("full fine-tuning needs full_epochs >= 0, full_batch_size >= 2 and "
                             f"full_from_block >= 0, got {self.full_epochs}, "
                             f"{self.full_batch_size}, {self.full_from_block}")
        if self.head_epochs == 0 and self.finetune_epochs == 0 and self.full_epochs <= 0:
            raise ValueError("nothing to train: head_epochs, finetune_epochs and full_epochs "
                             "are all 0")
        if not (self.full_base_visits > 0 and self.full_case_visits > 0):
            raise ValueError("full fine-tuning visits per epoch must be > 0, got base "
                             f"{self.full_base_visits}, cases {self.full_case_visits}")

    def to_dict(self) -> dict[str, Any]:
        """JSON form."""
        data = dataclasses.asdict(self)
        data["preprocess"] = self.preprocess.to_dict()
        return data


@dataclass
class TrainResult:
    """A trained network and what happened while training it."""

    network: nn.Module
    history: list[dict[str, float]]
    seconds: dict[str, float]
    val_logits: np.ndarray
    val_features: np.ndarray
    train_features: np.ndarray
    train_labels: np.ndarray
    train_visits: np.ndarray | None = None
    """Visits per training image and epoch of the full fine-tune (None: each image once)."""


def replay_visits(config: TrainConfig, count: int, cases: int) -> np.ndarray | None:
    """Expected visits per training image and epoch of the full fine-tune.

    The last ``cases`` images are expert-confirmed cases, visited ``full_case_visits`` times;
    the others, replayed base data, ``full_base_visits`` times. None when every image is
    visited once.
    """
    if (config.full_base_visits, config.full_case_visits) == (1.0, 1.0):
        return None
    visits = np.full(count, config.full_base_visits)
    visits[count - cases:] = config.full_case_visits
    return visits


@torch.inference_mode()
def _pooled(tail: Tail, features: np.ndarray, batch_size: int = 256) -> np.ndarray:
    tail.eval()
    out = [
        tail.pooled(torch.from_numpy(features[i : i + batch_size]).float()).numpy()
        for i in range(0, len(features), batch_size)
    ]
    return np.concatenate(out)


def _train_head(
    head: nn.Linear, pooled: np.ndarray, labels: np.ndarray, loss_fn: nn.Module,
    config: TrainConfig, generator: torch.Generator, log: Log,
) -> list[dict[str, float]]:
    x, y = torch.from_numpy(pooled), torch.from_numpy(labels)
    optimiser = torch.optim.AdamW(head.parameters(), lr=config.head_lr, weight_decay=1e-3)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimiser, config.head_epochs)
    dropout = nn.Dropout(0.2)
    history = []
    for epoch in range(config.head_epochs):
        order = torch.randperm(len(x), generator=generator)
        total = 0.0
        for start in range(0, len(x), 256):
            index = order[start : start + 256]
            loss = loss_fn(head(dropout(x[index])), y[index])
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            total += loss.item() * len(index)
        scheduler.step()
        history.append({"phase": 0.0, "epoch": float(epoch), "loss": total / len(x)})
    log(f"[head] {config.head_epochs} epochs, final loss {history[-1]['loss']:.4f}")
    return history


def train_classifier(
    train: Sequence[Record], val: Sequence[Record], classes: Sequence[str],
    config: TrainConfig, cache_dir: Path | None = None, log: Log = print_log,
    initial_state: dict[str, torch.Tensor] | None = None,
    context: LoopContext | None = None,
    cases: int = 0,
) -> TrainResult:
    """Train a network on ``train``; select the epoch by balanced accuracy on ``val``.

    Args:
        train: Training records.
        val: Validation records (model selection only; never the test split).
        classes: Class codes in output order.
        config: Hyper-parameters.
        cache_dir: Where prepared images, trunk features and checkpoints are cached.
        log: Progress sink.
        initial_state: Network weights to start from (e.g. a deployed model's) instead of
            ImageNet; skips the cached-feature phases, so ``config.full_epochs`` must be > 0.
        context: The full fine-tune's rank/world, stop request, epoch callback and
            checkpoint (a run folder's; by default a file in ``cache_dir`` named by the
            config and data).
        cases: How many of the last training records are expert-confirmed cases (visited
            ``full_case_visits`` times an epoch; the others, replayed base data,
            ``full_base_visits`` times).

    Returns:
        The trained network (full, eval mode) and its history.
    """
    if initial_state is not None and config.full_epochs <= 0:
        raise ValueError("starting from a model's weights only makes sense with full "
                         "fine-tuning epochs (full_epochs > 0)")
    torch.set_num_threads(config.threads)
    torch.manual_seed(config.seed)
    generator = torch.Generator().manual_seed(config.seed)
    arch = get_architecture(config.architecture)
    index = {c: i for i, c in enumerate(classes)}
    y_train = np.array([index[r.dx] for r in train], np.int64)
    y_val = np.array([index[r.dx] for r in val], np.int64)
    seconds: dict[str, float] = {}

    started = time.monotonic()
    network = build_network(config.architecture, len(classes),
                            pretrained=initial_state is None)
    blocks = config.trunk_blocks or arch.trunk_blocks
    trunk, tail = Trunk(network, blocks), Tail(network, blocks)
    for parameter in trunk.parameters():
        parameter.requires_grad_(False)
    identity = f"{config.architecture}-imagenet-{blocks}"
    train_images = prepared_images(train, config.preprocess, cache_dir, log)
    val_images = prepared_images(val, config.preprocess, cache_dir, log)
    train_id = _key(identity, [r.image_path for r in train])
    val_id = _key(identity, [r.image_path for r in val])
    loss_fn = training_loss(y_train, len(classes), config.class_weighting, config.label_smoothing)
    end_to_end = config.head_epochs == 0 and config.finetune_epochs == 0
    if initial_state is None and not end_to_end:
        history, val_features, train_view = _tail_phases(
            trunk, tail, train_images, val_images, y_train, y_val, loss_fn, config, generator,
            cache_dir, log, train_id, val_id, seconds, started)
    else:
        if initial_state is not None:
            network.load_state_dict(initial_state)
        history = []
        seconds["prepare"] = time.monotonic() - started
    if config.full_epochs > 0:
        started = time.monotonic()
        start_id = _state_key(initial_state) if initial_state is not None else "imagenet"
        context = context or LoopContext()
        if context.checkpoint is None and cache_dir is not None:
            # "stream-prior": the loss's prior counts visits (checkpoints of the earlier loss,
            # which counted labels, are not resumed)
            key = _key(config.to_dict(), train_id, val_id, start_id, "stream-prior")
            context = dataclasses.replace(context, checkpoint=cache_dir / f"full-{key}.pt")
        visits = replay_visits(config, len(y_train), cases)
        if visits is not None:  # the prior (or weights) of the stream the epochs visit
            loss_fn = training_loss(y_train, len(classes), config.class_weighting,
                                    config.label_smoothing, visits)
        history += finetune_network(network, train_images, y_train, val_images, y_val, loss_fn,
                                    config, None, log, context, visits)
        seconds["full_finetune"] = time.monotonic() - started
        if context.rank != 0:  # rank 0 calibrates and evaluates; the others are done
            network.eval()
            empty = np.zeros((0, 0), np.float32)
            return TrainResult(network, history, seconds, empty, empty, empty, y_train, visits)
        started = time.monotonic()
        val_logits, val_pooled = network_outputs(
            network, val_images, config.preprocess, Progress("validation outputs",
                                                             len(val_images), log))
        _, train_pooled = network_outputs(
            network, train_images, config.preprocess, Progress("training features (clean)",
                                                               len(train_images), log))
        seconds["final_features"] = time.monotonic() - started
    else:
        network.eval()
        val_logits, val_pooled = tail_logits(tail, val_features), _pooled(tail, val_features)
        train_pooled = _pooled(tail, train_view)
    network.eval()
    log(f"[train] done in {format_seconds(sum(seconds.values()))}: " + ", ".join(
        f"{k} {format_seconds(v)}" for k, v in seconds.items()))
    return TrainResult(network, history, seconds, val_logits, val_pooled, train_pooled, y_train,
                       visits if config.full_epochs > 0 else None)


def _state_key(state: dict[str, torch.Tensor]) -> str:
    digest = hashlib.sha256()
    for name in sorted(state):
        digest.update(name.encode())
        digest.update(state[name].detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()[:16]


def _tail_phases(
    trunk: Trunk, tail: Tail, train_images: np.ndarray, val_images: np.ndarray,
    y_train: np.ndarray, y_val: np.ndarray, loss_fn: nn.Module, config: TrainConfig,
    generator: torch.Generator, cache_dir: Path | None, log: Log, train_id: str, val_id: str,
    seconds: dict[str, float], started: float,
) -> tuple[list[dict[str, float]], np.ndarray, np.ndarray]:
    """Phases 1-3: cached trunk features, the linear head, the fine-tuned tail.

    Returns:
        The history, the validation trunk features and the first training view's.
    """
    num_classes = int(tail.classifier[-1].out_features)
    train_views = trunk_feature_views(trunk, train_images, config.preprocess, cache_dir, train_id,
                                      config.views, config.augment, config.seed, log)
    (val_features,) = trunk_feature_views(trunk, val_images, config.preprocess, cache_dir, val_id,
                                          1, None, config.seed, log)
    seconds["features"] = time.monotonic() - started

    started = time.monotonic()
    head_views = train_views[: config.head_views]
    pooled = np.concatenate([_pooled(tail, v) for v in head_views])
    labels = np.tile(y_train, len(head_views))
    history = _train_head(tail.classifier[1], pooled, labels, loss_fn, config, generator, log)
    head_score = balanced_accuracy(y_val, tail_logits(tail, val_features).argmax(1), num_classes)
    history[-1]["val_balanced_accuracy"] = head_score
    log(f"[head] val balanced accuracy {head_score:.4f}")
    seconds["head"] = time.monotonic() - started

    started = time.monotonic()
    history += finetune_tail(tail, train_views, y_train, val_features, y_val, loss_fn, config,
                         generator, cache_dir, log, baseline_score=head_score,
                         run_id=_key(train_id, val_id))
    seconds["finetune"] = time.monotonic() - started
    return history, val_features, train_views[0]
