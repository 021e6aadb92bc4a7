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
then skipped and only the full fine-tune runs.

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
from skinstation.training.state import save_checkpoint, snapshot, train_mode


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


def flip_features(batch: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """One random symmetry of the square (rot90 × flip) applied to a batch of feature maps.

    Lesions have no orientation; rotating and mirroring the trunk's feature maps is a cheap
    stand-in for fresh image rotations when the trunk outputs are cached.
    """
    turns, mirror = divmod(int(torch.randint(0, 8, (1,), generator=generator)), 2)
    batch = torch.rot90(batch, turns, dims=(2, 3))
    return torch.flip(batch, dims=(3,)) if mirror else batch


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
    if initial_state is None:
        history, val_features, train_view = _tail_phases(
            trunk, tail, train_images, val_images, y_train, y_val, loss_fn, config, generator,
            cache_dir, log, train_id, val_id, seconds, started)
    else:
        network.load_state_dict(initial_state)
        history = []
        seconds["prepare"] = time.monotonic() - started
    if config.full_epochs > 0:
        started = time.monotonic()
        start_id = _state_key(initial_state) if initial_state is not None else "imagenet"
        context = context or LoopContext()
        if context.checkpoint is None and cache_dir is not None:
            key = _key(config.to_dict(), train_id, val_id, start_id)
            context = dataclasses.replace(context, checkpoint=cache_dir / f"full-{key}.pt")
        visits = None
        if (config.full_base_visits, config.full_case_visits) != (1.0, 1.0):
            visits = np.full(len(y_train), config.full_base_visits)
            visits[len(y_train) - cases:] = config.full_case_visits
        history += finetune_network(network, train_images, y_train, val_images, y_val, loss_fn,
                                    config, None, log, context, visits)
        seconds["full_finetune"] = time.monotonic() - started
        if context.rank != 0:  # rank 0 calibrates and evaluates; the others are done
            network.eval()
            empty = np.zeros((0, 0), np.float32)
            return TrainResult(network, history, seconds, empty, empty, empty, y_train)
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
        val_logits, val_pooled = _logits(tail, val_features), _pooled(tail, val_features)
        train_pooled = _pooled(tail, train_view)
    network.eval()
    log(f"[train] done in {format_seconds(sum(seconds.values()))}: " + ", ".join(
        f"{k} {format_seconds(v)}" for k, v in seconds.items()))
    return TrainResult(network, history, seconds, val_logits, val_pooled, train_pooled, y_train)


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
    head_score = balanced_accuracy(y_val, _logits(tail, val_features).argmax(1), num_classes)
    history[-1]["val_balanced_accuracy"] = head_score
    log(f"[head] val balanced accuracy {head_score:.4f}")
    seconds["head"] = time.monotonic() - started

    started = time.monotonic()
    history += _finetune(tail, train_views, y_train, val_features, y_val, loss_fn, config,
                         generator, cache_dir, log, baseline_score=head_score,
                         run_id=_key(train_id, val_id))
    seconds["finetune"] = time.monotonic() - started
    return history, val_features, train_views[0]


@torch.inference_mode()
def _logits(tail: Tail, features: np.ndarray, batch_size: int = 256) -> np.ndarray:
    tail.eval()
    return np.concatenate([
        tail(torch.from_numpy(features[i : i + batch_size]).float()).numpy()
        for i in range(0, len(features), batch_size)
    ])


def _finetune(
    tail: Tail, views: list[np.ndarray], y_train: np.ndarray, val_features: np.ndarray,
    y_val: np.ndarray, loss_fn: nn.Module, config: TrainConfig, generator: torch.Generator,
    cache_dir: Path | None, log: Log, baseline_score: float = -1.0, run_id: str = "",
) -> list[dict[str, float]]:
    if config.finetune_epochs <= 0:
        return []
    num_classes = int(tail.classifier[-1].out_features)
    for parameter in tail.parameters():
        parameter.requires_grad_(True)
    optimiser = torch.optim.AdamW(
        [{"params": tail.blocks.parameters(), "lr": config.finetune_lr},
         {"params": tail.classifier.parameters(), "lr": config.finetune_lr * 2}],
        weight_decay=config.weight_decay,
    )
    steps_per_epoch = -(-len(y_train) * len(views) // config.batch_size)
    scheduler = torch.optim.lr_scheduler.OneCycleLR(
        optimiser, max_lr=[config.finetune_lr, config.finetune_lr * 2],
        total_steps=steps_per_epoch * config.finetune_epochs, pct_start=0.15,
    )
    checkpoint = (cache_dir / f"finetune-{_key(config.to_dict(), run_id, len(y_train))}.pt"
                  if cache_dir else None)
    history: list[dict[str, float]] = []
    best = {"score": baseline_score,
            "state": snapshot(tail)}
    average: dict[str, Any] = {"count": 0, "sum": {}}
    first_epoch = 0
    if checkpoint is not None and checkpoint.is_file():
        saved = torch.load(checkpoint, weights_only=True)
        tail.load_state_dict(saved["tail"])
        optimiser.load_state_dict(saved["optimiser"])
        scheduler.load_state_dict(saved["scheduler"])
        generator.set_state(saved["generator"])
        best = {"score": float(saved["best_score"]), "state": saved["best_state"]}
        history = [dict(h) for h in saved["history"]]
        average = {"count": int(saved["average_count"]), "sum": saved["average_sum"]}
        first_epoch = int(saved["epoch"]) + 1
        log(f"[fine-tune] resuming after epoch {first_epoch} from {checkpoint}")
    all_features = np.concatenate(views)
    all_labels = torch.from_numpy(np.tile(y_train, len(views)))
    for epoch in range(first_epoch, config.finetune_epochs):
        train_mode(tail, config.freeze_batchnorm)  # small CPU batches: keep ImageNet statistics
        order = torch.randperm(len(all_labels), generator=generator)
        progress = Progress(f"fine-tune epoch {epoch + 1}/{config.finetune_epochs}",
                            len(order), log, unit="samples", every=30.0)
        total = 0.0
        for start in range(0, len(order), config.batch_size):
            index = order[start : start + config.batch_size]
            if len(index) < 2:
                continue
            batch = torch.from_numpy(all_features[index.numpy()]).float()
            if config.feature_flips:
                batch = flip_features(batch, generator)
            loss = loss_fn(tail(batch), all_labels[index])
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            scheduler.step()
            total += loss.item() * len(index)
            progress.update(len(index))
        predictions = _logits(tail, val_features).argmax(1)
        score = balanced_accuracy(y_val, predictions, num_classes)
        history.append({"phase": 1.0, "epoch": float(epoch), "loss": total / len(order),
                        "val_balanced_accuracy": score})
        log(f"[fine-tune] epoch {epoch + 1}: loss {total / len(order):.4f}, "
            f"val balanced accuracy {score:.4f}")
        if score > best["score"]:
            best = {"score": score,
                    "state": snapshot(tail)}
        if epoch >= config.finetune_epochs - config.average_last:
            accumulate_weights(average, tail)
        if checkpoint is not None:
            save_checkpoint(checkpoint, {
                "tail": tail.state_dict(), "optimiser": optimiser.state_dict(),
                "scheduler": scheduler.state_dict(), "generator": generator.get_state(),
                "best_score": best["score"], "best_state": best["state"],
                "history": history, "epoch": epoch,
                "average_count": average["count"], "average_sum": average["sum"],
            })
    if average["count"] >= 2:
        best = average_if_better(tail, average, all_features[: len(y_train)], val_features, y_val,
                            config, best, history, log)
    if best["state"] is not None:
        tail.load_state_dict(best["state"])
    tail.eval()
    return history


def accumulate_weights(average: dict[str, Any], tail: Tail) -> None:
    """Add the tail's current floating-point state to a running sum (weight averaging)."""
    for key, value in tail.state_dict().items():
        if value.is_floating_point():
            average["sum"][key] = average["sum"].get(key, 0) + value.detach().double()
    average["count"] += 1


@torch.no_grad()
def average_if_better(
    tail: Tail, average: dict[str, Any], train_features: np.ndarray, val_features: np.ndarray,
    y_val: np.ndarray, config: TrainConfig, best: dict[str, Any],
    history: list[dict[str, float]], log: Log,
) -> dict[str, Any]:
    """Stochastic weight averaging (Izmailov et al. 2018) of the last epochs' tails.

    The averaged weights get fresh BatchNorm statistics from one clean pass over the first
    training view; they replace the best single epoch only if validation says they are better.
    """
    state = tail.state_dict()
    for key, total in average["sum"].items():
        state[key] = (total / average["count"]).to(state[key].dtype)
    tail.load_state_dict(state)
    norms = [m for m in tail.modules() if isinstance(m, nn.BatchNorm2d)]
    for module in norms:
        module.reset_running_stats()
        module.momentum = None  # cumulative average over the pass
    tail.train()
    for start in range(0, len(train_features), 256):
        tail.blocks(torch.from_numpy(train_features[start : start + 256]).float())
    for module in norms:
        module.momentum = 0.1
    num_classes = int(tail.classifier[-1].out_features)
    score = balanced_accuracy(y_val, _logits(tail, val_features).argmax(1), num_classes)
    history.append({"phase": 2.0, "epoch": float(config.finetune_epochs - 1),
                    "val_balanced_accuracy": score})
    log(f"[fine-tune] average of the last {average['count']} epochs: "
        f"val balanced accuracy {score:.4f} (best single epoch {best['score']:.4f})")
    if score > best["score"]:
        return {"score": score,
                "state": snapshot(tail)}
    return best
