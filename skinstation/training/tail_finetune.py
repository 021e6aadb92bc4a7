"""Phase 3 of the cached-feature recipe: the tail fine-tuned on cached trunk features.

The tail (the last blocks and the head) trains on the trunk's cached feature maps of every
augmented view; after every epoch the validation balanced accuracy decides which state is kept,
and a checkpoint is written atomically so an interrupted run resumes at the next epoch.
Optionally the last epochs' weights are averaged (:func:`average_if_better`) and random
symmetries of the feature maps stand in for fresh rotations (:func:`flip_features`).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import nn

from skinstation.inference.network import Tail
from skinstation.training.features import _key
from skinstation.training.metrics import balanced_accuracy
from skinstation.training.progress import Log, Progress
from skinstation.training.state import save_checkpoint, snapshot, train_mode

if TYPE_CHECKING:
    from skinstation.training.trainer import TrainConfig


def flip_features(batch: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """One random symmetry of the square (rot90 × flip) applied to a batch of feature maps.

    Lesions have no orientation; rotating and mirroring the trunk's feature maps is a cheap
    stand-in for fresh image rotations when the trunk outputs are cached.
    """
    turns, mirror = divmod(int(torch.randint(0, 8, (1,), generator=generator)), 2)
    batch = torch.rot90(batch, turns, dims=(2, 3))
    return torch.flip(batch, dims=(3,)) if mirror else batch


@torch.inference_mode()
def tail_logits(tail: Tail, features: np.ndarray, batch_size: int = 256) -> np.ndarray:
    """The tail's logits on cached trunk features (eval mode, in batches)."""
    tail.eval()
    return np.concatenate([
        tail(torch.from_numpy(features[i : i + batch_size]).float()).numpy()
        for i in range(0, len(features), batch_size)
    ])


def finetune_tail(
    tail: Tail, views: list[np.ndarray], y_train: np.ndarray, val_features: np.ndarray,
    y_val: np.ndarray, loss_fn: nn.Module, config: TrainConfig, generator: torch.Generator,
    cache_dir: Path | None, log: Log, baseline_score: float = -1.0, run_id: str = "",
) -> list[dict[str, float]]:
    """Fine-tune the tail for ``config.finetune_epochs``; keep the best validation state.

    Returns:
        History entries (phase 1.0 per epoch, 2.0 for the weight average if tried).
    """
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
        predictions = tail_logits(tail, val_features).argmax(1)
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
    score = balanced_accuracy(y_val, tail_logits(tail, val_features).argmax(1), num_classes)
    history.append({"phase": 2.0, "epoch": float(config.finetune_epochs - 1),
                    "val_balanced_accuracy": score})
    log(f"[fine-tune] average of the last {average['count']} epochs: "
        f"val balanced accuracy {score:.4f} (best single epoch {best['score']:.4f})")
    if score > best["score"]:
        return {"score": score,
                "state": snapshot(tail)}
    return best
