"""Retraining across processes or machines with PyTorch DDP (``torchrun``, gloo on CPU).

When one machine is not enough, the worker starts::

    python -m torch.distributed.run --standalone --nproc_per_node=N
        -m skinstation.engine.ddp --spec job-7/ddp-spec.json

(or, across machines, the same module under ``torchrun --nnodes=M --rdzv-endpoint=HOST:PORT``
on each machine with the shared storage mounted). Every rank computes the frozen trunk's
features for its own shard of the training records, then the head and the fine-tuned tail are
trained as one data-parallel model: DDP all-reduces the gradients, so all ranks hold identical
weights (checked at the end and recorded in the model file). Rank 0 then calibrates the
model on the validation split, evaluates it on the locked test split and writes the same kind
of model file as :func:`skinstation.training.pipeline.build_model`.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from skinstation.training.sources import Record

SPEC_NAME = "ddp-spec.json"


def write_spec(request: Any, path: Path) -> Path:
    """Write a ``BuildRequest`` as the JSON spec every rank reads."""
    spec = {
        "source": request.source, "split_path": str(request.split_path),
        "output": str(request.output), "config": request.config.to_dict(),
        "extra_records": [
            {"image_path": str(r.image_path), "image_id": r.image_id, "dx": r.dx,
             "lesion_id": r.lesion_id, "patient_id": r.patient_id, "source": r.source}
            for r in request.extra_records
        ],
        "target_sensitivity": request.target_sensitivity,
        "false_rejection": request.false_rejection, "version": request.version,
        "parent_version": request.parent_version,
        "cache_dir": None if request.cache_dir is None else str(request.cache_dir),
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(spec, indent=1), encoding="utf-8")
    return path


def run_torchrun(request: Any, processes: int, job_dir: Path, log: Any) -> None:
    """Train ``request`` with ``processes`` DDP ranks on this machine; raise if any rank fails.

    Raises:
        RuntimeError: torchrun exited with an error (its last output lines are included).
    """
    spec = write_spec(request, job_dir / SPEC_NAME)
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone",
               f"--nproc_per_node={processes}", "-m", "skinstation.engine.ddp",
               "--spec", str(spec)]
    log(f"starting DDP training: {' '.join(command[1:])}")
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               text=True)
    tail: list[str] = []
    assert process.stdout is not None
    for line in process.stdout:
        line = line.rstrip()
        log(line)
        tail = [*tail[-19:], line]
    if process.wait() != 0:
        raise RuntimeError(f"DDP training failed (exit {process.returncode}):\n" + "\n".join(tail))


def _config(data: dict[str, Any]) -> Any:
    from skinstation.inference.preprocessing import PreprocessConfig
    from skinstation.training.augment import AugmentConfig
    from skinstation.training.trainer import TrainConfig

    fields = {f.name for f in dataclasses.fields(TrainConfig)}
    values = {k: v for k, v in data.items() if k in fields}
    values["preprocess"] = PreprocessConfig.from_dict(data["preprocess"])
    values["augment"] = AugmentConfig(**data["augment"])
    return TrainConfig(**values)


def _equal_steps(count: int, batch: int) -> int:
    """Batches per epoch every rank can run (collectives must match across ranks)."""
    import torch
    import torch.distributed as dist

    steps = torch.tensor([max(1, count // batch)])
    dist.all_reduce(steps, op=dist.ReduceOp.MIN)
    return int(steps.item())


def _pooled(tail: Any, features: Any, batch: int = 256) -> Any:
    """Pooled tail features of trunk feature maps, in batches, without gradients."""
    import numpy as np
    import torch

    tail.eval()
    with torch.no_grad():
        return np.concatenate([
            tail.pooled(torch.as_tensor(features[i : i + batch]).float()).numpy()
            for i in range(0, len(features), batch)
        ])


def _average_gradients(parameters: list[Any], world: int) -> None:
    """All-reduce and average gradients by hand (the head phase, outside a DDP wrapper)."""
    import torch.distributed as dist

    for parameter in parameters:
        if parameter.grad is not None:
            dist.all_reduce(parameter.grad)
            parameter.grad /= world


def _epochs(model: Any, inputs: Any, labels: Any, loss_fn: Any, config: Any, *, epochs: int,
            lr: float, batch: int, generator: Any, log: Any, phase: str,
            start_epoch: Any, end_epoch: Any, world: int = 1,
            manual_sync: bool = False, flips: bool = False) -> list[dict[str, float]]:
    import torch

    from skinstation.training.trainer import flip_features

    parameters = [p for p in model.parameters() if p.requires_grad]
    optimiser = torch.optim.AdamW(parameters, lr=lr, weight_decay=config.weight_decay)
    steps = _equal_steps(len(labels), batch)
    history = []
    for epoch in range(epochs):
        start_epoch()
        order = torch.randperm(len(labels), generator=generator)
        total = 0.0
        for step in range(steps):
            index = order[step * batch : (step + 1) * batch]
            inputs_batch = torch.as_tensor(inputs[index.numpy()]).float()
            if flips:
                inputs_batch = flip_features(inputs_batch, generator)
            loss = loss_fn(model(inputs_batch), labels[index])
            optimiser.zero_grad()
            loss.backward()  # inside DDP the gradients are all-reduced here
            if manual_sync:
                _average_gradients(parameters, world)
            optimiser.step()
            total += loss.item()
        history.append({"phase": phase, "epoch": epoch, "loss": total / steps})
        log(f"[{phase}] epoch {epoch + 1}/{epochs}: loss {total / steps:.4f} ({steps} steps/rank)")
        end_epoch(f"{phase} epoch {epoch + 1}")
    return history


def ddp_build(spec: dict[str, Any]) -> None:
    """Run one rank of the distributed build (see the module docstring)."""
    import numpy as np
    import torch
    import torch.distributed as dist
    from torch import nn
    from torch.nn.parallel import DistributedDataParallel

    from skinstation.inference.network import Tail, Trunk, build_network, get_architecture
    from skinstation.inference.taxonomy import load_taxonomy
    from skinstation.training.features import prepared_images, trunk_feature_views
    from skinstation.training.metrics import balanced_accuracy
    from skinstation.training.sources import fingerprint, load_source
    from skinstation.training.splits import load_split
    from skinstation.training.trainer import (
        accumulate_weights,
        average_if_better,
        snapshot,
        training_loss,
    )

    dist.init_process_group("gloo")
    rank, world = dist.get_rank(), dist.get_world_size()

    def log(message: str) -> None:
        print(f"[rank {rank}/{world}] {message}", file=sys.stderr, flush=True)

    config = _config(spec["config"])
    torch.set_num_threads(max(1, config.threads // world))
    torch.manual_seed(config.seed)
    taxonomy = load_taxonomy()
    records, _ = load_source(spec["source"])
    split = load_split(spec["split_path"], records)
    extras = [Record(Path(r.pop("image_path")), **r) for r in spec["extra_records"]]
    train = split.select(records, "train") + extras
    shard = train[rank::world]
    index = {c: i for i, c in enumerate(taxonomy.classes)}
    y_shard = torch.tensor([index[r.dx] for r in shard])
    loss_fn = training_loss(np.array([index[r.dx] for r in train]), len(index),
                            config.class_weighting, config.label_smoothing)
    cache = Path(spec["cache_dir"]) if spec["cache_dir"] else None
    log(f"{len(shard)} of {len(train)} training images ({len(extras)} reviewed cases overall)")

    arch = get_architecture(config.architecture)
    network = build_network(config.architecture, len(index), pretrained=True)
    blocks = config.trunk_blocks or arch.trunk_blocks
    trunk, tail = Trunk(network, blocks), Tail(network, blocks)
    for parameter in network.parameters():
        parameter.requires_grad_(False)
    images = prepared_images(shard, config.preprocess, cache, log)
    identity = f"ddp-{config.architecture}-{blocks}-{[str(r.image_path) for r in shard]}"
    views = np.concatenate(trunk_feature_views(
        trunk, images, config.preprocess, cache, identity, config.views, config.augment,
        config.seed, log))
    labels = y_shard.repeat(config.views)
    generator = torch.Generator().manual_seed(config.seed + rank)
    batch = max(2, config.batch_size // world)

    # Model selection on validation happens on rank 0, which alone writes the model file.
    val = split.select(records, "val")
    y_val = np.array([index[r.dx] for r in val])
    val_features = None
    if rank == 0:
        val_images = prepared_images(val, config.preprocess, cache, log)
        (val_features,) = trunk_feature_views(
            trunk, val_images, config.preprocess, cache,
            f"ddp-val-{config.architecture}-{blocks}-{[str(r.image_path) for r in val]}", 1,
            None, config.seed, log)
    best: dict[str, Any] = {"score": -1.0, "state": None, "after": ""}
    average: dict[str, Any] = {"count": 0, "sum": {}}
    first_averaged = config.finetune_epochs - config.average_last + 1

    def select(after: str) -> None:
        if rank != 0:
            return
        tail.eval()
        with torch.no_grad():
            logits = tail.classifier(torch.as_tensor(_pooled(tail, val_features)).float())
        score = balanced_accuracy(y_val, logits.numpy().argmax(1), len(index))
        log(f"[{after}] val balanced accuracy {score:.4f}")
        if score > best["score"]:
            best.update(score=score, after=after,
                        state=snapshot(tail))
        if after.startswith("fine-tune epoch ") and int(after.split()[-1]) >= first_averaged:
            accumulate_weights(average, tail)

    def fine_tune_mode() -> None:
        tail.train()
        if config.freeze_batchnorm:  # keep ImageNet batch-norm statistics (small CPU batches)
            for module in tail.modules():
                if isinstance(module, nn.BatchNorm2d):
                    module.eval()

    pooled = _pooled(tail, views)
    for parameter in tail.classifier.parameters():
        parameter.requires_grad_(True)
    history = _epochs(tail.classifier, pooled, labels, loss_fn, config,
                      epochs=config.head_epochs, lr=config.head_lr, batch=batch,
                      generator=generator, log=log, phase="head",
                      start_epoch=tail.classifier.train, end_epoch=lambda _after: None,
                      world=world, manual_sync=True)
    select("head")
    for parameter in tail.parameters():
        parameter.requires_grad_(True)
    model = DistributedDataParallel(tail)
    history += _epochs(model, views, labels, loss_fn, config, epochs=config.finetune_epochs,
                       lr=config.finetune_lr, batch=batch, generator=generator, log=log,
                       phase="fine-tune", start_epoch=fine_tune_mode, end_epoch=select,
                       flips=config.feature_flips)
    network.eval()

    checksum = torch.tensor([float(sum(p.double().sum() for p in tail.parameters()))],
                            dtype=torch.float64)
    gathered = [torch.zeros_like(checksum) for _ in range(world)]
    dist.all_gather(gathered, checksum)
    counts = [torch.zeros(1, dtype=torch.int64) for _ in range(world)]
    dist.all_gather(counts, torch.tensor([len(shard)]))
    checksums = [float(t.item()) for t in gathered]
    if len(set(checksums)) != 1:
        raise RuntimeError(f"ranks disagree on the trained weights: {checksums}")
    if rank == 0:
        if average["count"] >= 2:  # same rule as the single-process trainer
            kept = average_if_better(tail, average, views[: len(shard)], val_features, y_val,
                                config, best, history, log)
            if kept is not best:
                best.update(kept, after=f"average of the last {average['count']} epochs")
        tail.load_state_dict(best["state"])
        network.eval()
        train_pooled = _pooled(tail, views[: len(shard)])  # first view, selected tail
        distributed = {"backend": dist.get_backend(), "world_size": world,
                       "images_per_rank": [int(c.item()) for c in counts],
                       "weight_checksums": checksums, "history": history,
                       "selected": best["after"], "val_balanced_accuracy": best["score"]}
        log(f"selected the weights after {best['after']} (val balanced accuracy "
            f"{best['score']:.4f})")
        _finish_on_rank0(spec, config, network, train_pooled, y_shard.numpy(),
                         split, records, train, taxonomy, fingerprint, distributed, log)
    dist.barrier()
    dist.destroy_process_group()


def _finish_on_rank0(spec: dict[str, Any], config: Any, network: Any,
                     train_pooled: Any, train_labels: Any, split: Any, records: Any,
                     train: Any, taxonomy: Any, fingerprint: Any,
                     distributed: dict[str, Any], log: Any) -> None:
    """Calibrate on validation, evaluate on the locked test split, write the model file."""
    from skinstation.inference.classifier import Classifier
    from skinstation.inference.model_file import ModelMetadata, save_model_file
    from skinstation.training.evaluation import compute_metrics, run_model
    from skinstation.training.pipeline import fit_operating_points, summarise

    output = Path(spec["output"])
    created = dt.datetime.now(dt.UTC)
    metadata = ModelMetadata(
        model_version=spec["version"], architecture=config.architecture,
        classes=list(taxonomy.classes), taxonomy=taxonomy.to_dict(),
        preprocess=config.preprocess.to_dict(),
        data_fingerprint=fingerprint(train) + ":" + split.records_fingerprint,
        created_at=created.isoformat(timespec="seconds"), parent_version=spec["parent_version"],
        training={**config.to_dict(), "source": spec["source"], "split": spec["split_path"],
                  "train_images": len(train), "extra_records": len(spec["extra_records"]),
                  "distributed": distributed},
    )
    state = network.state_dict()
    save_model_file(output, state, metadata)
    val = split.select(records, "val")
    val_outputs = run_model(Classifier.load(output, warm_up=False), val, log=log)
    temperature, points, assess = fit_operating_points(
        val_outputs, taxonomy, train_pooled.astype("float64"), train_labels,
        spec["target_sensitivity"], spec["false_rejection"])
    metadata = dataclasses.replace(metadata, temperature=temperature, **points)
    state = {**state, **assess.state()}
    save_model_file(output, state, metadata)
    classifier = Classifier.load(output, warm_up=False)
    outputs = run_model(classifier, split.select(records, "test"), log=log)
    metrics = compute_metrics(outputs, taxonomy, temperature, classifier.referral_threshold,
                              n_boot=200)
    save_model_file(output, state, dataclasses.replace(metadata, metrics={"test": summarise(
        metrics)}))
    log(f"wrote {output}: test balanced accuracy {metrics['balanced_accuracy']:.3f}")


def main(argv: list[str] | None = None) -> int:
    """Entry point of one DDP rank (started by torchrun)."""
    parser = argparse.ArgumentParser(description="one rank of a DDP retraining")
    parser.add_argument("--spec", required=True, help="JSON spec written by the worker")
    args = parser.parse_args(argv)
    ddp_build(json.loads(Path(args.spec).read_text(encoding="utf-8")))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
