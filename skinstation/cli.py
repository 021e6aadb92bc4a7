"""The ``skinstation`` command line: train, evaluate, predict (and the station/engine apps).

Each subcommand parses arguments, calls one service function and prints the result; no logic
lives here.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from skinstation.settings import Settings


def _settings(args: argparse.Namespace) -> Settings:
    overrides = {}
    if getattr(args, "data_dir", None):
        overrides["data_dir"] = args.data_dir
    return Settings.load(**overrides)


def _resolve_source(spec: str, settings: Settings) -> str:
    """Resolve a source spec's path against the data dir when it is relative and not local."""
    kind, sep, location = spec.partition(":")
    if not sep or len(kind) == 1:
        kind, location = "", spec
    path = Path(location)
    if not path.is_absolute() and not path.exists() and settings.data_dir is not None:
        path = settings.data_dir / path
    return f"{kind}:{path}" if kind else str(path)


def _pairs(items: list[str]) -> dict[str, float]:
    """Parse ``code=value`` arguments."""
    result = {}
    for item in items:
        code, sep, value = item.partition("=")
        if not sep:
            raise SystemExit(f"error: expected CODE=VALUE, got {item!r}")
        result[code.strip()] = float(value)
    return result


def _rate(text: str) -> float:
    """An argparse type: a fraction in [0, 1)."""
    value = float(text)
    if not 0 <= value < 1:
        raise argparse.ArgumentTypeError(f"must be a fraction in [0, 1), got {text}")
    return value


def _input_size(text: str) -> int:
    """An argparse type: an input size in pixels the preprocessing accepts (>= 16)."""
    value = int(text)
    if value < 16:
        raise argparse.ArgumentTypeError(f"must be at least 16 px, got {text}")
    return value


def cmd_recalibrate(args: argparse.Namespace) -> int:
    """Refit a model's operating points on validation and save it as a new version."""
    from skinstation.training.recalibration import recalibrate_model

    settings = _settings(args)
    try:
        metadata = recalibrate_model(
            Path(args.model), _resolve_source(args.data, settings), Path(args.split),
            Path(args.out), _pairs(args.min_sensitivity), args.target_sensitivity,
            [_resolve_source(s, settings) for s in args.eval],
            false_rejection=args.false_rejection,
            assessability_method=args.assessability_method or None, size=args.size)
    except ValueError as exc:  # a request this model cannot take (e.g. no statistics to refit)
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"saved {args.out} (version {metadata.model_version})")
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    """Evaluate a model file on a data source and write the report."""
    from skinstation.inference.classifier import Classifier
    from skinstation.training.evaluation import compute_metrics, run_model
    from skinstation.training.pipeline import summary_line
    from skinstation.training.report import write_report
    from skinstation.training.sources import load_source
    from skinstation.training.splits import load_split

    settings = _settings(args)
    classifier = Classifier.load(args.model or settings.model_path, threads=args.threads)
    records, report = load_source(_resolve_source(args.data, settings), skip_bad=args.skip_bad,
                                  verify_images=args.skip_bad)
    print(report.summary())
    if args.split:
        records = load_split(args.split, records).select(records, args.subset)
    if not records:
        print("error: no records to evaluate", file=sys.stderr)
        return 2
    if args.robustness:
        return _robustness(classifier, records, args)
    outputs = run_model(classifier, records)
    metrics = compute_metrics(outputs, classifier.taxonomy, classifier.temperature,
                              classifier.referral_threshold, n_boot=args.bootstrap)
    html_path = write_report(metrics, list(classifier.taxonomy.classes), args.report,
                             f"{classifier.version} on {args.data}")
    print(summary_line(args.subset if args.split else "all", metrics))
    per_class = ", ".join(f"{c} {m['sensitivity']:.3f}" for c, m in metrics["per_class"].items())
    print(f"per-class sensitivity: {per_class}")
    rule = metrics["decision_rule"]
    print(f"decision rule: coverage {rule['coverage']:.3f}, accuracy on decided "
          f"{rule['accuracy_on_decided']:.3f}")
    print(f"report: {html_path}")
    return 0


def _robustness(classifier: Any, records: list[Any], args: argparse.Namespace) -> int:
    """``evaluate --robustness``: the figures under every shift; table printed, JSON written."""
    from skinstation.training.robustness import evaluate_robustness, format_robustness

    result = evaluate_robustness(classifier, records, log=lambda message: None)
    report = Path(args.report)
    report.mkdir(parents=True, exist_ok=True)
    (report / "robustness.json").write_text(json.dumps(result, indent=2) + "\n")
    label = args.subset if args.split else "all"
    print(format_robustness(f"{label} ({len(records)})", result))
    print(f"report: {report / 'robustness.json'}")
    return 0


def cmd_predict(args: argparse.Namespace) -> int:
    """Classify image files and print fine classes, groups and the decision."""
    from skinstation.inference.classifier import Classifier
    from skinstation.inference.preprocessing import ImageDecodeError, decode_image

    settings = _settings(args)
    classifier = Classifier.load(args.model or settings.model_path, threads=args.threads)
    status = 0
    for image_path in args.images:
        try:
            prediction = classifier.classify(decode_image(image_path))
        except ImageDecodeError as exc:
            print(f"error: {exc}", file=sys.stderr)
            status = 1
            continue
        if args.json:
            print(json.dumps({"image": image_path, **prediction.to_dict(args.language)}))
            continue
        print(f"{image_path}")
        for code, p in sorted(prediction.class_probs.items(), key=lambda kv: -kv[1]):
            print(f"  {code:6s} {p:6.3f}  {classifier.taxonomy.class_names[code]}")
        for code, p in prediction.group_probs.items():
            print(f"  group {code:14s} {p:6.3f}")
        print(f"  decision: {prediction.decision} ({prediction.decision_text(args.language)})")
        if prediction.referral:
            print(f"  SAFETY REFERRAL: p(skin cancer) >= {prediction.referral_threshold:.3f}")
        print(f"  guidance: {prediction.guidance(args.language)}")
        print(f"  model {prediction.model_version}; {prediction.to_dict()['notice']}")
    return status


def cmd_model_card(args: argparse.Namespace) -> int:
    """Write the Markdown model card of a model file from its own metadata."""
    from skinstation.inference.model_file import load_model_file
    from skinstation.training.model_card import render_model_card

    metadata, _ = load_model_file(args.model)
    rerun = args.rerun or (f"skinstation train --out {args.model}")
    notes = Path(args.notes).read_text(encoding="utf-8") if args.notes else ""
    card = render_model_card(metadata, Path(args.model).stat().st_size, rerun, notes)
    Path(args.out).write_text(card, encoding="utf-8")
    print(f"wrote {args.out}")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    """Drive the station flow without the UI, printing each step."""
    import getpass
    import os

    from skinstation.services.demo import run_demo

    settings = _settings(args)
    if args.home:
        settings = settings.replace(home=Path(args.home))
    if args.model:
        settings = settings.replace(model_path=Path(args.model))
    password = os.environ.get(args.password_env) if args.password_env else None
    if not password:
        password = getpass.getpass(f"password for {args.username}: ")
    images = Path(args.images) if args.images else (
        settings.data_dir / "ham10000" / "images" if settings.data_dir else None)
    run_demo(settings, images, args.username, password)
    return 0


def cmd_station(args: argparse.Namespace) -> int:
    """Open the exam-station app (the same as ``python -m skinstation``)."""
    from skinstation.ui.app import main as station_main

    argv = []
    for name in ("data_dir", "home", "model", "camera", "language", "exit_after"):
        if getattr(args, name, None):
            argv += [f"--{name.replace('_', '-')}", str(getattr(args, name))]
    return station_main(argv)


def cmd_export_onnx(args: argparse.Namespace) -> int:
    """Export a model file's network (with its temperature) to ONNX."""
    from skinstation.inference.onnx_export import export_onnx

    print(f"wrote {export_onnx(args.model, args.out)}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of every subcommand."""
    from skinstation.cli_train import register_train_command
    from skinstation.training.trainer import TrainConfig

    defaults = TrainConfig()
    parser = argparse.ArgumentParser(prog="skinstation", description=__doc__)
    parser.add_argument("--data-dir", help="root of the image data (e.g. ../shared/data)")
    commands = parser.add_subparsers(dest="command")

    register_train_command(commands, defaults)

    recal = commands.add_parser("recalibrate",
                                help="refit temperature, referral threshold and decision "
                                     "offsets on validation (no retraining)")
    recal.add_argument("--model", required=True)
    recal.add_argument("--data", default="ham10000:ham10000")
    recal.add_argument("--split", default="resources/splits/ham10000.csv")
    recal.add_argument("--out", required=True)
    recal.add_argument("--eval", action="append", default=[])
    recal.add_argument("--target-sensitivity", type=float, default=0.95)
    recal.add_argument("--min-sensitivity", action="append", default=[], metavar="CODE=VALUE")
    recal.add_argument("--false-rejection", type=_rate, default=None,
                       help="refit the not-assessable threshold at this validation rejection rate")
    recal.add_argument("--assessability-method", default="",
                       choices=["", "subspace", "mahalanobis"],
                       help="switch the not-assessable score (refits its threshold)")
    recal.add_argument("--size", type=_input_size, default=None,
                       help="input size (px) at inference; refits the not-assessable threshold")
    recal.set_defaults(handler=cmd_recalibrate)

    evaluate = commands.add_parser("evaluate", help="evaluate a model on a data source")
    evaluate.add_argument("--model", default="", help="model file (default: settings model)")
    evaluate.add_argument("--data", required=True, help="source spec or path")
    evaluate.add_argument("--split", default="", help="split file; evaluate only --subset")
    evaluate.add_argument("--subset", default="test", choices=["train", "val", "test"])
    evaluate.add_argument("--report", default="evaluation-report")
    evaluate.add_argument("--skip-bad", action="store_true", help="skip and count bad rows")
    evaluate.add_argument("--bootstrap", type=int, default=1000)
    evaluate.add_argument("--threads", type=int, default=2)
    evaluate.add_argument("--robustness", action="store_true",
                          help="also under colour, blur, JPEG, rotation and scale shifts "
                               "(balanced accuracy, referral, cost of each shift)")
    evaluate.set_defaults(handler=cmd_evaluate)

    predict = commands.add_parser("predict", help="classify image files")
    predict.add_argument("images", nargs="+")
    predict.add_argument("--model", default="")
    predict.add_argument("--json", action="store_true", help="one JSON object per line")
    predict.add_argument("--language", default="en", choices=["en", "ko"])
    predict.add_argument("--threads", type=int, default=2)
    predict.set_defaults(handler=cmd_predict)

    demo = commands.add_parser("demo", help="run the station flow without the UI")
    demo.add_argument("--home", default="", help="station home (database, images)")
    demo.add_argument("--images", default="", help="folder the simulated dermatoscope plays")
    demo.add_argument("--model", default="")
    demo.add_argument("--username", default="nurse")
    demo.add_argument("--password-env", default="",
                      help="environment variable holding the password (else prompt)")
    demo.set_defaults(handler=cmd_demo)

    station = commands.add_parser("station", help="open the exam-station app (PySide6)")
    for name in ("--home", "--model", "--camera", "--language", "--exit-after"):
        station.add_argument(name, help="as for python -m skinstation")
    station.set_defaults(handler=cmd_station)

    onnx = commands.add_parser("export-onnx", help="export a model's network to ONNX")
    onnx.add_argument("--model", required=True)
    onnx.add_argument("--out", required=True)
    onnx.set_defaults(handler=cmd_export_onnx)

    card = commands.add_parser("model-card", help="write a model card from a model file")
    card.add_argument("--model", required=True)
    card.add_argument("--out", required=True)
    card.add_argument("--rerun", default="", help="command line that rebuilds the model")
    card.add_argument("--notes", default="", help="Markdown file appended as the card's notes")
    card.set_defaults(handler=cmd_model_card)

    from skinstation.engine.cli import register_engine_commands
    from skinstation.station_cli import register_station_commands
    from skinstation.sync.cli import register_sync_commands

    register_engine_commands(commands)
    register_sync_commands(commands)
    register_station_commands(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``skinstation`` command."""
    parser = build_parser()
    args = parser.parse_args(argv)
    args.argv = list(argv) if argv is not None else sys.argv[1:]
    if not getattr(args, "handler", None):
        parser.print_help()
        return 2
    from skinstation.auth import AuthError
    from skinstation.camera import CameraError, IlluminatorError
    from skinstation.inference.model_file import ModelFileError
    from skinstation.storage import StorageError
    from skinstation.training.runs import RunError
    from skinstation.training.sources import DataSourceError
    from skinstation.training.splits import SplitError

    expected = (ModelFileError, DataSourceError, SplitError, FileNotFoundError, AuthError,
                CameraError, IlluminatorError, StorageError, RunError)
    try:
        return args.handler(args)
    except expected as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    raise SystemExit(main())
