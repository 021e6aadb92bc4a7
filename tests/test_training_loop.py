"""The one training loop: resume after a kill, stop on request, and data-parallel equality.

A tiny convolutional network (two blocks, no dropout) on real HAM10000 images prepared at 32 px
keeps these fast; the loop is the one ``skinstation train``, the engine's worker and its DDP
processes run.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from skinstation.inference.preprocessing import PreprocessConfig, decode_image, prepare
from skinstation.inference.taxonomy import load_taxonomy
from skinstation.training.full_finetune import (
    LoopContext,
    TrainingInterrupted,
    data_parallel_group,
    finetune_network,
)
from skinstation.training.losses import per_sample_loss, training_loss
from skinstation.training.sources import load_manifest
from skinstation.training.trainer import TrainConfig
from tests.conftest import REPO_ROOT

PREPROCESS = PreprocessConfig(size=32, hair_removal=False)


class TinyNet(nn.Module):
    """``features`` blocks + ``classifier`` (as MobileNetV2 is laid out), 7 classes."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(3)
        self.features = nn.Sequential(
            nn.Sequential(nn.Conv2d(3, 8, 3, stride=2), nn.BatchNorm2d(8), nn.ReLU()),
            nn.Sequential(nn.Conv2d(8, 16, 3, stride=2), nn.ReLU()),
        )
        self.classifier = nn.Sequential(nn.Dropout(0.0), nn.Linear(16, 7))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        pooled = torch.flatten(nn.functional.adaptive_avg_pool2d(self.features(images), 1), 1)
        return self.classifier(pooled)


def _data(manifest: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    records, _ = load_manifest(manifest)
    classes = load_taxonomy().classes
    images = np.stack([prepare(decode_image(r.image_path), PREPROCESS) for r in records])
    labels = np.array([classes.index(r.dx) for r in records], np.int64)
    return images[:30], labels[:30], images[30:], labels[30:]


def _config(epochs: int = 3) -> TrainConfig:
    return TrainConfig(preprocess=PREPROCESS, full_epochs=epochs, full_lr=3e-3,
                       full_batch_size=8, seed=5, class_weighting="balanced")


def _train(manifest: Path, context: LoopContext, epochs: int = 3) -> tuple[TinyNet, list]:
    train_x, train_y, val_x, val_y = _data(manifest)
    network = TinyNet()
    loss = training_loss(train_y, 7, "balanced")
    history = finetune_network(network, train_x, train_y, val_x, val_y, loss, _config(epochs),
                               None, lambda message: None, context)
    return network, history


def _assert_same(a: nn.Module, b: nn.Module, tolerance: float = 0.0) -> None:
    for key, value in a.state_dict().items():
        torch.testing.assert_close(value, b.state_dict()[key], rtol=tolerance, atol=tolerance,
                                   msg=key)


def test_per_sample_losses_sum_to_the_batch_mean_over_any_partition():
    torch.manual_seed(0)
    labels = np.array([0, 0, 0, 1, 2, 2, 3, 4, 5, 6, 6, 6])
    logits, target = torch.randn(12, 7), torch.from_numpy(labels)
    for mode in ("balanced", "logit_adjusted", "none"):
        loss_fn = training_loss(labels, 7, mode, label_smoothing=0.1)
        losses, weights = per_sample_loss(loss_fn, logits, target)
        torch.testing.assert_close(losses.sum() / weights.sum(), loss_fn(logits, target))
        halves = [per_sample_loss(loss_fn, logits[i::2], target[i::2]) for i in (0, 1)]
        combined = sum(h[0].sum() for h in halves) / sum(h[1].sum() for h in halves)
        torch.testing.assert_close(combined, loss_fn(logits, target))
    with pytest.raises(TypeError, match="no per-sample form for MSELoss"):
        per_sample_loss(nn.MSELoss(), logits, target)


class _StopAfter:
    """A stop request that turns true after ``calls`` false checks (one check per batch)."""

    def __init__(self, calls: int) -> None:
        self.calls = calls

    def is_set(self) -> bool:
        self.calls -= 1
        return self.calls < 0


def test_a_stop_inside_an_epoch_checkpoints_and_the_resumed_run_is_identical(
        tiny_manifest, tmp_path):
    whole, whole_history = _train(tiny_manifest, LoopContext())
    checkpoint = tmp_path / "checkpoint.pt"
    # 30 images in batches of 8: 4 checks an epoch; the 6th check (epoch 2) says stop
    with pytest.raises(TrainingInterrupted, match="stopped in epoch 2 after 16 images"):
        _train(tiny_manifest, LoopContext(checkpoint=checkpoint, stop=_StopAfter(5)))
    saved = torch.load(checkpoint, weights_only=True)
    assert (saved["epoch"], saved["next_start"]) == (0, 16)
    epochs = []
    resumed, history = _train(tiny_manifest, LoopContext(
        checkpoint=checkpoint, on_epoch=lambda h, s: epochs.append(int(h[-1]["epoch"]))))
    assert epochs == [1, 2]  # the second and third epochs ran after the resume
    assert history == whole_history
    _assert_same(resumed, whole)


def test_resume_after_a_kill_continues_from_the_last_epoch_with_identical_results(
        tiny_manifest, tmp_path):
    checkpoint = tmp_path / "checkpoint.pt"
    # a real SIGKILL right after epoch 2's checkpoint: no handler, no clean-up
    script = textwrap.dedent(f"""
        import os, signal, sys
        sys.path.insert(0, {str(REPO_ROOT)!r})
        from pathlib import Path
        from tests.test_training_loop import _train
        from skinstation.training.full_finetune import LoopContext
        def killed(history, seconds):
            if len(history) == 3:
                os.kill(os.getpid(), signal.SIGKILL)
        _train(Path({str(tiny_manifest)!r}), LoopContext(
            checkpoint=Path({str(checkpoint)!r}), on_epoch=killed))
    """)
    run = subprocess.run([sys.executable, "-c", script], cwd=REPO_ROOT, timeout=300,
                         capture_output=True, text=True, check=False)
    assert run.returncode == -signal.SIGKILL, run.stderr[-2000:]
    assert int(torch.load(checkpoint, weights_only=True)["epoch"]) == 1
    lines: list[str] = []
    train_x, train_y, val_x, val_y = _data(tiny_manifest)
    resumed = TinyNet()
    finetune_network(resumed, train_x, train_y, val_x, val_y,
                     training_loss(train_y, 7, "balanced"), _config(), None, lines.append,
                     LoopContext(checkpoint=checkpoint))
    assert any("resuming after epoch 2" in line for line in lines)
    assert sum(line.startswith("[full fine-tune] epoch") for line in lines) == 1
    whole, _ = _train(tiny_manifest, LoopContext())
    _assert_same(resumed, whole)


def _ddp_worker(rank: int, world: int, init: str, manifest: str, out: str) -> None:
    torch.set_num_threads(1)
    with data_parallel_group(init_method=init, rank=rank, world_size=world):
        network, history = _train(Path(manifest), LoopContext(rank=rank, world=world))
        if rank == 0:
            torch.save({"network": network.state_dict(), "history": history}, out)


def test_the_loop_on_two_data_parallel_processes_equals_one_process(tiny_manifest, tmp_path):
    single, single_history = _train(tiny_manifest, LoopContext())
    out = tmp_path / "ddp.pt"
    torch.multiprocessing.spawn(
        _ddp_worker, args=(2, f"file://{tmp_path / 'rendezvous'}", str(tiny_manifest),
                           str(out)), nprocs=2, join=True)
    saved = torch.load(out, weights_only=True)
    parallel = TinyNet()
    parallel.load_state_dict(saved["network"])
    _assert_same(parallel, single, tolerance=1e-4)
    assert [h["epoch"] for h in saved["history"]] == [h["epoch"] for h in single_history]
    for ours, theirs in zip(saved["history"], single_history, strict=True):
        assert ours["val_balanced_accuracy"] == pytest.approx(theirs["val_balanced_accuracy"])
        assert ours.get("loss", 0.0) == pytest.approx(theirs.get("loss", 0.0), rel=1e-4)


def test_robustness_shifts_change_the_images_and_costs_are_measured(tiny_model, tiny_manifest):
    from skinstation.inference.classifier import Classifier
    from skinstation.training.robustness import (
        COLOUR_SHIFTS,
        SHIFTS,
        evaluate_robustness,
        format_robustness,
    )

    records, _ = load_manifest(tiny_manifest)
    image = decode_image(records[0].image_path)
    for name, shift in SHIFTS.items():
        shifted = shift(image)
        assert shifted.shape == image.shape and shifted.dtype == np.uint8, name
        assert not np.array_equal(shifted, image), name
    # saturation x0.6 lowers the mean HSV saturation; gamma 1.4 darkens
    import cv2
    hsv = cv2.cvtColor(image, cv2.COLOR_RGB2HSV)[..., 1].mean()
    assert cv2.cvtColor(SHIFTS["saturation x0.6"](image), cv2.COLOR_RGB2HSV)[..., 1].mean() \
        == pytest.approx(0.6 * hsv, rel=0.05)
    assert SHIFTS["gamma 1.4"](image).mean() < image.mean()
    assert len(COLOUR_SHIFTS) == 9

    classifier = Classifier.load(tiny_model, warm_up=False)
    result = evaluate_robustness(classifier, records[:14], ["hue +0.05", "jpeg 30"],
                                 log=lambda message: None)
    for name, row in result["shifts"].items():
        assert row["cost"] == pytest.approx(result["none"]["balanced_accuracy"]
                                            - row["balanced_accuracy"]), name
    assert result["worst_colour_cost"] == result["shifts"]["hue +0.05"]["cost"]
    table = format_robustness("tiny", result)
    assert "unshifted" in table and "jpeg 30" in table and "worst colour-shift cost" in table
    with pytest.raises(KeyError, match="unknown shift"):
        evaluate_robustness(classifier, records[:2], ["sepia"])
