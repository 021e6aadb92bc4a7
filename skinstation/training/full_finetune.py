"""Fine-tuning the whole network on freshly augmented images (the optional last phase).

Tail-only training on cached trunk features cannot adapt the early blocks to dermoscopy, and
its augmentation is limited to the few views cached. This phase trains every block from
``full_from_block`` on, with a new random augmentation of every image in every epoch. It is
the slow phase: on 2 CPU cores the whole MobileNetV2 trained at 11.4 images/s at 224 px in
batches of 8 on real, augmented HAM10000 images (augmentation is 4% of that time), so one epoch
over HAM10000's training split takes about 10 minutes. (``bench/bench_training_batch.py``
repeats one random batch and reports more; small batches are still faster than large ones.)

BatchNorm running statistics stay frozen (batches of 8 are too small to estimate them); the
affine parameters train. After every epoch the validation balanced accuracy decides which
state is kept (the starting network competes too), and a checkpoint is written atomically so
an interrupted run resumes at the next epoch.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
from torch import nn

from skinstation.inference.preprocessing import PreprocessConfig, to_model_input
from skinstation.training.augment import augment
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


def _batch(images: np.ndarray, index: np.ndarray, rng: np.random.Generator,
           config: TrainConfig) -> torch.Tensor:
    return torch.from_numpy(np.stack([
        to_model_input(augment(images[i], rng, config.augment), config.preprocess)
        for i in index
    ]))


def finetune_network(
    network: nn.Module, train_images: np.ndarray, y_train: np.ndarray,
    val_images: np.ndarray, y_val: np.ndarray, loss_fn: nn.Module, config: TrainConfig,
    checkpoint: Path | None, log: Log,
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
        checkpoint: Per-epoch checkpoint file (resumed from when present); None disables.
        log: Progress sink.

    Returns:
        History entries (phase 3.0), the first being the starting network's validation score.
    """
    if config.full_epochs <= 0:
        return []
    num_classes = int(network.classifier[-1].out_features)
    trainable = _freeze(network, config.full_from_block)
    optimiser = torch.optim.AdamW(trainable, lr=config.full_lr, weight_decay=config.weight_decay)
    steps_per_epoch = -(-len(y_train) // config.full_batch_size)
    scheduler = torch.optim.lr_scheduler.OneCycleLR(
        optimiser, max_lr=config.full_lr, total_steps=steps_per_epoch * config.full_epochs,
        pct_start=0.1,
    )
    labels = torch.from_numpy(y_train)
    first_epoch = 0
    if checkpoint is not None and checkpoint.is_file():
        saved = torch.load(checkpoint, weights_only=True)
        network.load_state_dict(saved["network"])
        optimiser.load_state_dict(saved["optimiser"])
        scheduler.load_state_dict(saved["scheduler"])
        best = {"score": float(saved["best_score"]), "state": saved["best_state"]}
        history = [dict(h) for h in saved["history"]]
        first_epoch = int(saved["epoch"]) + 1
        log(f"[full fine-tune] resuming after epoch {first_epoch} from {checkpoint}")
    else:
        score = _val_score(network, val_images, y_val, config, num_classes, log, "start")
        history = [{"phase": 3.0, "epoch": -1.0, "val_balanced_accuracy": score}]
        best = {"score": score, "state": snapshot(network)}
    for epoch in range(first_epoch, config.full_epochs):
        rng = np.random.default_rng([config.seed, epoch])  # same epoch, same order and views
        order = rng.permutation(len(y_train))
        train_mode(network, freeze_batchnorm=True)  # batches of 8 cannot estimate them
        progress = Progress(f"full fine-tune epoch {epoch + 1}/{config.full_epochs}",
                            len(order), log, unit="images", every=60.0)
        total = 0.0
        for start in range(0, len(order), config.full_batch_size):
            index = order[start : start + config.full_batch_size]
            if len(index) < 2:
                continue
            loss = loss_fn(network(_batch(train_images, index, rng, config)),
                           labels[torch.from_numpy(index)])
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            scheduler.step()
            total += loss.item() * len(index)
            progress.update(len(index))
        score = _val_score(network, val_images, y_val, config, num_classes, log, f"{epoch + 1}")
        history.append({"phase": 3.0, "epoch": float(epoch), "loss": total / len(order),
                        "val_balanced_accuracy": score})
        log(f"[full fine-tune] epoch {epoch + 1}: loss {total / len(order):.4f}, "
            f"val balanced accuracy {score:.4f} (best so far {max(best['score'], score):.4f})")
        if score > best["score"]:
            best = {"score": score, "state": snapshot(network)}
        if checkpoint is not None:
            save_checkpoint(checkpoint, {
                "network": network.state_dict(), "optimiser": optimiser.state_dict(),
                "scheduler": scheduler.state_dict(), "best_score": best["score"],
                "best_state": best["state"], "history": history, "epoch": epoch,
            })
    network.load_state_dict(best["state"])
    network.eval()
    for parameter in network.parameters():
        parameter.requires_grad_(False)
    return history


def _val_score(network: nn.Module, images: np.ndarray, labels: np.ndarray, config: TrainConfig,
               num_classes: int, log: Log, label: str) -> float:
    progress = Progress(f"validation ({label})", len(images), log, every=60.0)
    logits, _ = network_outputs(network, images, config.preprocess, progress)
    return balanced_accuracy(labels, logits.argmax(1), num_classes)
