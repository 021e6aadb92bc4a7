"""Retraining across processes or machines with PyTorch DDP (``torchrun``, gloo on CPU).

When one machine is not enough, the worker starts::

    python -m torch.distributed.run --standalone --nproc_per_node=N
        -m skinstation.engine.retraining.ddp --spec job-7/ddp-spec.json

(or, across machines, the same module under ``torchrun --nnodes=M --rdzv-endpoint=HOST:PORT``
on each machine with the shared storage mounted). There is no second training loop here:
every rank runs the learning unit's own :func:`skinstation.training.pipeline.train_stage`
with its rank and world size (:class:`~skinstation.training.full_finetune.LoopContext`), so
the whole-network loop shards every global batch across the ranks and all-reduces the
gradients, and all ranks take the same optimiser steps. Rank 0 then calibrates, evaluates
and writes the model file exactly as ``skinstation train`` does (``seal_stage``).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from skinstation.training.sources import Record

SPEC_NAME = "ddp-spec.json"


def _record_spec(r: Record) -> dict[str, str]:
    return {"image_path": str(r.image_path), "image_id": r.image_id, "dx": r.dx,
            "lesion_id": r.lesion_id, "patient_id": r.patient_id, "source": r.source,
            "true_group": r.true_group}


def _spec_record(r: dict[str, str]) -> Record:
    return Record(Path(r["image_path"]), r["image_id"], r["dx"], r["lesion_id"],
                  r["patient_id"], r["source"], r.get("true_group", ""))


def write_spec(request: Any, path: Path) -> Path:
    """Write a ``BuildRequest`` as the JSON spec every rank reads."""
    spec = {
        "source": request.source, "split_path": str(request.split_path),
        "output": str(request.output), "config": request.config.to_dict(),
        "extra_records": [_record_spec(r) for r in request.extra_records],
        "validation_records": [_record_spec(r) for r in request.validation_records],
        "eval_sources": list(request.eval_sources),
        "target_sensitivity": request.target_sensitivity,
        "false_rejection": request.false_rejection,
        "min_sensitivity": dict(request.min_sensitivity), "version": request.version,
        "parent_version": request.parent_version,
        "report_dir": None if request.report_dir is None else str(request.report_dir),
        "cache_dir": None if request.cache_dir is None else str(request.cache_dir),
        "init_model": None if request.init_model is None else str(request.init_model),
        "also": [[spec, str(split)] for spec, split in request.also],
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(spec, indent=1), encoding="utf-8")
    return path


def read_spec(spec: dict[str, Any]) -> Any:
    """The ``BuildRequest`` a spec describes (the inverse of :func:`write_spec`)."""
    from skinstation.inference.preprocessing import PreprocessConfig
    from skinstation.training.augment import AugmentConfig
    from skinstation.training.pipeline import BuildRequest
    from skinstation.training.trainer import TrainConfig

    data = spec["config"]
    fields = {f.name for f in dataclasses.fields(TrainConfig)}
    values = {k: v for k, v in data.items() if k in fields}
    values["preprocess"] = PreprocessConfig.from_dict(data["preprocess"])
    values["augment"] = AugmentConfig(**data["augment"])

    def path(value: str | None) -> Path | None:
        return None if value is None else Path(value)

    return BuildRequest(
        source=spec["source"], split_path=Path(spec["split_path"]),
        output=Path(spec["output"]), config=TrainConfig(**values),
        extra_records=[_spec_record(r) for r in spec["extra_records"]],
        validation_records=[_spec_record(r) for r in spec.get("validation_records", [])],
        eval_sources=list(spec.get("eval_sources", [])),
        target_sensitivity=float(spec["target_sensitivity"]),
        false_rejection=float(spec["false_rejection"]),
        min_sensitivity=dict(spec.get("min_sensitivity", {})), version=spec["version"],
        parent_version=spec["parent_version"], report_dir=path(spec.get("report_dir")),
        cache_dir=path(spec.get("cache_dir")), init_model=path(spec.get("init_model")),
        also=[(s, Path(p)) for s, p in spec.get("also", [])],
    )


def run_torchrun(request: Any, processes: int, job_dir: Path, log: Any) -> None:
    """Train ``request`` with ``processes`` DDP ranks on this machine; raise if any rank fails.

    Raises:
        RuntimeError: torchrun exited with an error (its last output lines are included).
    """
    spec = write_spec(request, job_dir / SPEC_NAME)
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone",
               f"--nproc_per_node={processes}", "-m", "skinstation.engine.retraining.ddp",
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


def ddp_build(spec: dict[str, Any]) -> None:
    """Run one rank of the distributed build (see the module docstring)."""
    from skinstation.training.full_finetune import LoopContext, data_parallel_group
    from skinstation.training.pipeline import seal_stage, train_stage

    with data_parallel_group() as (rank, world):

        def log(message: str) -> None:
            print(f"[rank {rank}/{world}] {message}", file=sys.stderr, flush=True)

        request = read_spec(spec)
        config = dataclasses.replace(request.config,
                                     threads=max(1, request.config.threads // world))
        request = dataclasses.replace(request, config=config,
                                      context=LoopContext(rank=rank, world=world))
        log(f"training with {world} processes, {config.threads} thread(s) each")
        trained = train_stage(request, log)
        if rank == 0:
            metadata = seal_stage(request, trained, log)
            log(f"wrote {request.output} ({metadata.model_version}): test balanced accuracy "
                f"{metadata.metrics['test']['balanced_accuracy']:.3f}")


def main(argv: list[str] | None = None) -> int:
    """Entry point of one DDP rank (started by torchrun)."""
    parser = argparse.ArgumentParser(description="one rank of a DDP retraining")
    parser.add_argument("--spec", required=True, help="JSON spec written by the worker")
    args = parser.parse_args(argv)
    ddp_build(json.loads(Path(args.spec).read_text(encoding="utf-8")))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
