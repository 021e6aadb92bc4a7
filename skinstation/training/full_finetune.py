"""Fine-tuning the whole network on freshly augmented images (the optional last phase).

Tail-only training on cached trunk features cannot adapt the early blocks to dermoscopy, and
its augmentation is limited to the few views cached. This phase trains every block from
``full_from_block`` on, with a new random augmentation of every image in every epoch. It is
the slow phase: on 2 CPU cores the whole MobileNetV2 trained at 11.4 images/s at 224 px in
batches of 8 on real, augmented HAM10000 images (augmentation is 4% of that time), so one epoch
over HAM10000's training split takes about 10 minutes. (``bench/bench_training_batch.py``
repeats one random batch and reports more; small batches are still faster than large ones.)

BatchNorm running statistics stay frozen by default (batches of 8 are too small to estimate
them); the affine parameters train. ``full_batchnorm_stats`` updates them from every batch
(for batches of 32 or more, as the end-to-end recipe uses).

After every epoch the validation balanced accuracy decides which state is kept (the starting
network competes too), and a checkpoint is written atomically so an interrupted run resumes
at the next epoch; a stop request (SIGTERM) checkpoints at the next batch boundary, and the
run resumes inside that epoch.

Every random choice is a function of ``(seed, epoch, image)`` or ``(seed, epoch, step)``,
never of what ran before: a resumed run takes exactly the steps the uninterrupted one would,
and the same loop runs data-parallel (``LoopContext.rank``/``world``): each process takes its
share of every global batch, the summed gradients are all-reduced, and every process takes
the same optimiser step. With frozen BatchNorm that is the single-process step (up to
floating-point summation order and the dropout masks). With ``full_batchnorm_stats`` it is
not: each process normalises with the statistics of its own share of the batch (plain
BatchNorm, not SyncBatchNorm), so a DDP run of the end-to-end recipe differs from a
single-process run by more than noise, and the running statistics kept are rank 0's.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np
import torch
from torch import nn

from skinstation.inference.preprocessing import PreprocessConfig, to_model_input
from skinstation.training.augment import augment
from skinstation.training.losses import per_sample_loss
from skinstation.training.metrics import balanced_accuracy
from skinstation.training.progress import Log, Progress
from skinstation.training.state import save_checkpoint, snapshot, train_mode

if TYPE_CHECKING:
    from skinstation.training.trainer import TrainConfig


@torch.inference_mode()
def network_outputs(
    network: nn.Module, images: np.ndarray, config: PreprocessConfig,
    progress: Progress | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Logits and pooled features of the whole network on clean prepared uint8 images.

    The same computation as the station's classifier (features, global average pool,
    classifier), one image at a time (the fastest on 2 cores).

    Returns:
        ``(logits (N, classes), pooled (N, feature_dim))`` as float32.
    """
    network.eval()
    logits, pooled = [], []
    for image in images:
        batch = torch.from_numpy(to_model_input(image, config)[None])
        features = torch.flatten(nn.functional.adaptive_avg_pool2d(network.features(batch), 1), 1)
        pooled.append(features.numpy())
        logits.append(network.classifier(features).numpy())
        if progress is not None:
            progress.update()
    return np.concatenate(logits), np.concatenate(pooled)


class StopRequest(Protocol):
    """Anything with ``is_set()`` (a ``threading.Event``, a SIGTERM flag)."""

    def is_set(self) -> bool:
        """Whether the run was asked to stop."""
        ...


@contextmanager
def data_parallel_group(**init: Any) -> Iterator[tuple[int, int]]:
    """Join the gloo process group for the block; yields ``(rank, world)``.

    On a normal exit every rank waits at a barrier before the group is destroyed: a rank
    that tears gloo down while a peer still has its last collective in flight aborts the
    peer's process ("terminate called without an active exception", SIGABRT). On an error
    the group is destroyed at once, since a failed peer would never reach the barrier.

    Args:
        **init: Passed to ``torch.distributed.init_process_group`` (``init_method``,
            ``rank``, ``world_size``; omitted, they come from torchrun's environment).
    """
    import torch.distributed as dist

    dist.init_process_group("gloo", **init)
    try:
        yield dist.get_rank(), dist.get_world_size()
        dist.barrier()
    finally:
        dist.destroy_process_group()


class TrainingInterrupted(RuntimeError):
    """The run stopped on request after checkpointing; resuming continues where it stopped."""


@dataclass
class LoopContext:
    """Where the loop runs and what it reports to.

    Attributes:
        rank: This process's index among ``world`` data-parallel processes.
        world: Number of processes (``torch.distributed`` must be initialised when > 1).
        checkpoint: Checkpoint file (resumed from when present); None disables.
        stop: Stop request checked after every batch; when set, the loop checkpoints and
            raises :class:`TrainingInterrupted`.
        on_epoch: Called (on rank 0) after every finished epoch with the history so far and
            the epoch's seconds.
    """

    rank: int = 0
    world: int = 1
    checkpoint: Path | None = None
    stop: StopRequest | None = None
    on_epoch: Callable[[list[dict[str, float]], float], None] | None = None


def _freeze(network: nn.Module, from_block: int) -> list[nn.Parameter]:
    """Make blocks ``from_block`` on (and the classifier) trainable; returns their parameters."""
    trainable = []
    for index, block in enumerate(network.features):
        for parameter in block.parameters():
            parameter.requires_grad_(index >= from_block)
            if index >= from_block:
                trainable.append(parameter)
    for parameter in network.classifier.parameters():
        parameter.requires_grad_(True)
        trainable.append(parameter)
    return trainable


def _seed(*parts: int) -> int:
    return int(np.random.SeedSequence([int(p) for p in parts]).generate_state(1)[0])


def epoch_order(count: int, visits: np.ndarray | None, seed: int, epoch: int) -> np.ndarray:
    """The images one epoch visits, in order (a function of seed and epoch only).

    Without ``visits`` every image once. With them (expected visits per image and epoch, e.g.
    0.5 for replayed base data, 4 for expert-confirmed cases) each image comes
    ``floor(v)`` times plus, for the fractional parts, a draw of exactly
    ``round(sum(frac))`` images weighted by them: every epoch has the same length.
    """
    rng = np.random.default_rng([seed, epoch])
    if visits is None:
        return rng.permutation(count)
    whole = np.floor(visits).astype(np.int64)
    fraction = visits - whole
    extra_count = round(float(fraction.sum()))
    chosen = (rng.choice(count, extra_count, replace=False, p=fraction / fraction.sum())
              if extra_count else np.zeros(0, np.int64))
    return rng.permutation(np.concatenate([np.repeat(np.arange(count), whole), chosen]))


def _batch(images: np.ndarray, index: np.ndarray, positions: np.ndarray, epoch: int,
           config: TrainConfig) -> torch.Tensor:
    """Augmented model inputs; each transform depends only on (seed, epoch, position)."""
    power = (config.preprocess.sog_power
             if config.preprocess.color_constancy == "shades_of_gray" else None)
    return torch.from_numpy(np.stack([
        to_model_input(augment(images[i], np.random.default_rng([config.seed, epoch, int(at)]),
                               config.augment, power), config.preprocess)
        for i, at in zip(index, positions, strict=True)
    ]))


def _all_reduce(tensor: torch.Tensor, world: int) -> torch.Tensor:
    if world > 1:
        torch.distributed.all_reduce(tensor)
    return tensor


def _step(network: nn.Module, trainable: list[nn.Parameter], images: np.ndarray,
          labels: torch.Tensor, index: np.ndarray, start: int, epoch: int, step: int,
          loss_fn: nn.Module, config: TrainConfig, context: LoopContext) -> float:
    """One optimiser step's gradients over a global batch; returns its summed loss."""
    local = index[context.rank :: context.world]
    positions = np.arange(start, start + len(index))[context.rank :: context.world]
    torch.manual_seed(_seed(config.seed, epoch, step, context.rank))  # dropout masks
    inputs = _batch(images, local, positions, epoch, config)
    losses, weights = per_sample_loss(loss_fn, network(inputs), labels[torch.from_numpy(local)])
    totals = _all_reduce(torch.stack([losses.detach().sum(), weights.sum()]), context.world)
    for parameter in trainable:
        parameter.grad = None
    (losses.sum() / totals[1]).backward()
    if context.world > 1:
        for parameter in trainable:
            if parameter.grad is not None:
                torch.distributed.all_reduce(parameter.grad)
    return float(totals[0]) / float(totals[1]) * len(index)


def finetune_network(
    network: nn.Module, train_images: np.ndarray, y_train: np.ndarray,
    val_images: np.ndarray, y_val: np.ndarray, loss_fn: nn.Module, config: TrainConfig,
    checkpoint: Path | None, log: Log, context: LoopContext | None = None,
    visits: np.ndarray | None = None,
) -> list[dict[str, float]]:
    """Train the network end to end for ``config.full_epochs`` epochs; keep the best state.

    Args:
        network: Full network (``features`` + ``classifier``), trained in place.
        train_images: Prepared uint8 training images (N, S, S, 3).
        y_train: Their class indices.
        val_images: Prepared uint8 validation images (clean, never augmented).
        y_val: Their class indices.
        loss_fn: Imbalance-aware loss (see ``trainer.training_loss``).
        config: Hyper-parameters (``full_*`` fields, ``augment``, ``preprocess``, ``seed``).
        checkpoint: Per-epoch checkpoint file (overrides ``context.checkpoint`` when given).
        log: Progress sink.
        context: Rank/world, stop request and epoch callback (single process by default).
        visits: Expected visits of each training image per epoch (see :func:`epoch_order`);
            None visits every image once.

    Returns:
        History entries (phase 3.0), the first being the starting network's validation score.

    Raises:
        TrainingInterrupted: The stop request was set; the checkpoint holds the position.
    """
    context = context or LoopContext()
    checkpoint = checkpoint if checkpoint is not None else context.checkpoint
    if config.full_epochs <= 0:
        return []
    num_classes = int(network.classifier[-1].out_features)
    trainable = _freeze(network, config.full_from_block)
    optimiser = torch.optim.AdamW(trainable, lr=config.full_lr, weight_decay=config.weight_decay)
    epoch_length = len(epoch_order(len(y_train), visits, config.seed, 0))
    steps_per_epoch = -(-epoch_length // config.full_batch_size)
    scheduler = torch.optim.lr_scheduler.OneCycleLR(
        optimiser, max_lr=config.full_lr, total_steps=steps_per_epoch * config.full_epochs,
        pct_start=0.1,
    )
    labels = torch.from_numpy(y_train)
    first_epoch, first_start, total = 0, 0, 0.0
    if checkpoint is not None and checkpoint.is_file():
        saved = torch.load(checkpoint, weights_only=True)
        network.load_state_dict(saved["network"])
        optimiser.load_state_dict(saved["optimiser"])
        scheduler.load_state_dict(saved["scheduler"])
        best = {"score": float(saved["best_score"]), "state": saved["best_state"]}
        history = [dict(h) for h in saved["history"]]
        first_epoch = int(saved["epoch"]) + 1
        first_start, total = int(saved.get("next_start", 0)), float(saved.get("loss_sum", 0.0))
        if first_start:  # stopped inside an epoch: continue that epoch at its next batch
            log(f"[full fine-tune] resuming epoch {first_epoch + 1} at image {first_start} "
                f"from {checkpoint}")
        else:
            log(f"[full fine-tune] resuming after epoch {first_epoch} from {checkpoint}")
    else:
        score = _val_score(network, val_images, y_val, config, num_classes, log, "start",
                           context)
        history = [{"phase": 3.0, "epoch": -1.0, "val_balanced_accuracy": score}]
        best = {"score": score, "state": snapshot(network)}

    def save(epoch: int, next_start: int, loss_sum: float) -> None:
        if checkpoint is not None and context.rank == 0:
            save_checkpoint(checkpoint, {
                "network": network.state_dict(), "optimiser": optimiser.state_dict(),
                "scheduler": scheduler.state_dict(), "best_score": best["score"],
                "best_state": best["state"], "history": history, "epoch": epoch,
                "next_start": next_start, "loss_sum": loss_sum,
            })

    for epoch in range(first_epoch, config.full_epochs):
        started = time.monotonic()
        order = epoch_order(len(y_train), visits, config.seed, epoch)
        # batches of 8 cannot estimate BatchNorm statistics; batches of 32 can (single process:
        # under data parallelism each rank would estimate them from its share alone)
        train_mode(network, freeze_batchnorm=not config.full_batchnorm_stats)
        progress = Progress(f"full fine-tune epoch {epoch + 1}/{config.full_epochs}",
                            len(order) - first_start, log, unit="images", every=60.0)
        for start in range(first_start, len(order), config.full_batch_size):
            index = order[start : start + config.full_batch_size]
            if len(index) >= max(2, context.world):
                total += _step(network, trainable, train_images, labels, index, start, epoch,
                               start // config.full_batch_size, loss_fn, config, context)
                optimiser.step()
            scheduler.step()
            progress.update(len(index))
            if context.stop is not None and context.stop.is_set():
                # (epoch - 1, next_start > 0) means "inside epoch", as the resume branch reads it
                next_start = min(start + config.full_batch_size, len(order))
                save(epoch - 1, next_start, total)
                raise TrainingInterrupted(
                    f"stopped in epoch {epoch + 1} after {next_start} images; "
                    f"checkpoint {checkpoint}")
        first_start = 0
        score = _val_score(network, val_images, y_val, config, num_classes, log, f"{epoch + 1}",
                           context)
        history.append({"phase": 3.0, "epoch": float(epoch), "loss": total / len(order),
                        "val_balanced_accuracy": score})
        log(f"[full fine-tune] epoch {epoch + 1}: loss {total / len(order):.4f}, "
            f"val balanced accuracy {score:.4f} (best so far {max(best['score'], score):.4f})")
        total = 0.0
        if score > best["score"]:
            best = {"score": score, "state": snapshot(network)}
        save(epoch, 0, 0.0)
        if context.on_epoch is not None and context.rank == 0:
            context.on_epoch(history, time.monotonic() - started)
    network.load_state_dict(best["state"])
    network.eval()
    for parameter in network.parameters():
        parameter.requires_grad_(False)
    return history


def _val_score(network: nn.Module, images: np.ndarray, labels: np.ndarray, config: TrainConfig,
               num_classes: int, log: Log, label: str, context: LoopContext) -> float:
    """Validation balanced accuracy; each process scores its share, predictions are gathered."""
    share = np.arange(context.rank, len(images), context.world)
    progress = Progress(f"validation ({label})", len(share), log, every=60.0)
    logits, _ = network_outputs(network, images[share], config.preprocess, progress)
    predicted = np.full(len(images), -1, np.int64)
    predicted[share] = logits.argmax(1)
    if context.world > 1:
        gathered: list[Any] = [None] * context.world
        torch.distributed.all_gather_object(gathered, predicted)
        predicted = np.max(np.stack(gathered), axis=0)
    return balanced_accuracy(labels, predicted, num_classes)
