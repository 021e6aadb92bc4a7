"""From a labelled source to a verified, calibrated, evaluated model file.

``build_model`` is what ``skinstation train`` and the engine's retraining worker run:

1. load the source and its saved lesion/patient split (made and saved on first use), and any
   further sources (``also``: e.g. the ISIC archive's other clinics) with their own splits:
   their training parts join training, their validation parts the validation pool, their
   test parts are reported beside the locked test split (as ``other-clinics``);
2. train (cached trunk features → head → fine-tuned tail; selection on validation);
3. on the validation split, through the station's own inference path: fit the temperature,
   the safety referral threshold (target skin-cancer sensitivity) and the assessability
   (out-of-distribution) threshold at the stated false-rejection rate;
4. evaluate on the locked test split (and any extra sources, e.g. PAD-UFES-20) and store the
   metrics in the model file; write the HTML/JSON reports.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from skinstation.inference.assessability import AssessabilityModel
from skinstation.inference.classifier import Classifier, softmax
from skinstation.inference.model_file import ModelMetadata, load_model_file, save_model_file
from skinstation.inference.preprocessing import PreprocessConfig
from skinstation.inference.taxonomy import SKIN_CANCER, Taxonomy, load_taxonomy
from skinstation.training.calibration import (
    fit_decision_offsets,
    fit_referral_threshold,
    fit_rejection_threshold,
    fit_temperature,
)
from skinstation.training.evaluation import ModelOutputs, compute_metrics, run_model
from skinstation.training.full_finetune import LoopContext
from skinstation.training.losses import log_prior
from skinstation.training.progress import Log, print_log
from skinstation.training.report import write_report
from skinstation.training.sources import Record, fingerprint, load_source
from skinstation.training.splits import load_or_make_split
from skinstation.training.trainer import TrainConfig, train_classifier

ASSESSABILITY_METHOD = "subspace"


@dataclass
class BuildRequest:
    """What to build.

    Attributes:
        source: Training source spec (e.g. ``ham10000:../shared/data/ham10000``).
        split_path: Split file (made and saved if missing).
        output: Model file to write.
        config: Training hyper-parameters.
        extra_records: Additional training records (e.g. expert-confirmed synced cases);
            they only ever join the training split.
        validation_records: Additional validation records (confirmed cases of patients held
            out of training): they join the validation pool that keeps the best epoch and
            fits the operating points, never the test sets.
        eval_sources: Extra sources evaluated in full (never trained on).
        target_sensitivity: Skin-cancer sensitivity the referral threshold must reach on val.
        false_rejection: Fraction of validation images the assessability check may reject.
        min_sensitivity: Fine class → minimum validation sensitivity of the predicted class
            (cost-sensitive decision offsets, e.g. ``{"mel": 0.8}``); empty = plain argmax.
        report_dir: Where reports go (``<output>.reports/`` by default).
        version: Model version string (generated if empty).
        parent_version: Version this model descends from.
        cache_dir: Feature cache folder.
        init_model: Model file whose weights training starts from (full fine-tuning only);
            its architecture, classes and preprocessing must match; it becomes the parent.
        also: Further ``(source spec, split file)`` pairs trained, validated and tested on
            alongside ``source`` (each test part is reported on its own).
        context: The full fine-tune's rank/world, stop request, epoch callback and checkpoint
            (a run folder's, see :mod:`skinstation.training.runs`).
        run: Name of the run folder the build lives in ("" when none; kept in the model).
    """

    source: str
    split_path: Path
    output: Path
    config: TrainConfig = field(default_factory=TrainConfig)
    extra_records: Sequence[Record] = ()
    validation_records: Sequence[Record] = ()
    eval_sources: Sequence[str] = ()
    target_sensitivity: float = 0.95
    false_rejection: float = 0.03
    min_sensitivity: dict[str, float] = field(default_factory=dict)
    report_dir: Path | None = None
    version: str = ""
    parent_version: str = ""
    cache_dir: Path | None = None
    init_model: Path | None = None
    also: Sequence[tuple[str, Path]] = ()
    context: LoopContext | None = None
    run: str = ""


OTHER_CLINICS = "other-clinics"


def other_clinics_label(index: int, spec: str, count: int) -> str:
    """The report label of an ``also`` source's test part (``other-clinics`` when only one)."""
    kind = spec.split(":", 1)[0] if ":" in spec else Path(spec).name
    return OTHER_CLINICS if count == 1 else f"{OTHER_CLINICS}-{index + 1}-{kind}"


def load_training_sets(request: BuildRequest, log: Log) -> tuple[
        list[Record], list[Record], list[Record], dict[str, list[Record]], str]:
    """Train, validation pool, locked test and the other sources' tests, with a fingerprint."""
    records, report = load_source(request.source)
    log(report.summary())
    split = load_or_make_split(request.split_path, records, seed=request.config.seed)
    train, val, test = (split.select(records, name) for name in ("train", "val", "test"))
    fingerprints, others = [split.records_fingerprint], {}
    for index, (spec, split_path) in enumerate(request.also):
        extra, extra_report = load_source(spec)
        log(extra_report.summary())
        extra_split = load_or_make_split(split_path, extra, seed=request.config.seed)
        train += extra_split.select(extra, "train")
        val += extra_split.select(extra, "val")
        others[other_clinics_label(index, spec, len(request.also))] = extra_split.select(
            extra, "test")
        fingerprints.append(extra_split.records_fingerprint)
    return train, val, test, others, "+".join(fingerprints)


def training_hardware(request: BuildRequest) -> str:
    """Where the model is trained (for the model card): CPU cores, threads, processes, torch."""
    import os

    import torch

    world = request.context.world if request.context else 1
    return (f"CPU ({os.cpu_count()} cores), {request.config.threads} thread(s) x {world} "
            f"process(es), torch {torch.__version__}")


def initial_weights(model: Path, config: TrainConfig,
                    classes: Sequence[str]) -> tuple[ModelMetadata, dict[str, Any]]:
    """A verified model file's network weights, checked to fit ``config`` and ``classes``.

    Raises:
        ValueError: The model's architecture, classes or preprocessing differ.
    """
    metadata, state = load_model_file(model)
    for what, theirs, ours in [("architecture", metadata.architecture, config.architecture),
                               ("classes", list(metadata.classes), list(classes)),
                               ("preprocessing",
                               PreprocessConfig.from_dict(metadata.preprocess).to_dict(),
                               config.preprocess.to_dict())]:
        if theirs != ours:
            raise ValueError(f"cannot start from {model}: its {what} {theirs} differs from "
                             f"the training config's {ours}")
    network = {k: v for k, v in state.items() if k.startswith(("features.", "classifier."))}
    return metadata, network


def class_labels(records: Sequence[Record], taxonomy: Taxonomy) -> np.ndarray:
    """Class indices of the records' fine labels."""
    return np.array([taxonomy.classes.index(r.dx) for r in records])


def fit_operating_points(
    outputs: ModelOutputs, taxonomy: Taxonomy, train_pooled: np.ndarray,
    train_labels: np.ndarray, target_sensitivity: float, false_rejection: float,
) -> tuple[float, dict[str, Any], AssessabilityModel]:
    """Temperature, referral threshold and assessability model, all from validation outputs."""
    temperature = fit_temperature(outputs.calibration_logits,
                                  class_labels(outputs.records, taxonomy))
    probs = softmax(outputs.calibration_logits, temperature)
    p_cancer = (probs @ taxonomy.group_matrix())[:, taxonomy.groups.index(SKIN_CANCER)]
    cancer = np.array([r.group(taxonomy) == SKIN_CANCER for r in outputs.records])
    assess = AssessabilityModel.fit_mahalanobis(train_pooled, train_labels, len(taxonomy.classes),
                                                method=ASSESSABILITY_METHOD)
    scores = np.array(assess.scores(outputs.pooled, outputs.logits), np.float64)
    assess.threshold = fit_rejection_threshold(scores, false_rejection, protected=cancer)
    # the referral as the station shows it: a rejected image shows no flag
    referral = fit_referral_threshold(p_cancer, cancer, target_sensitivity,
                                      assessable=(scores <= assess.threshold)
                                      & outputs.assessable)
    assess_meta = assess.metadata(
        false_rejection_target=false_rejection,
        val_false_rejection=float((scores > assess.threshold).mean()),
        val_false_rejection_cancer=float((scores[cancer] > assess.threshold).mean()),
    )
    return temperature, {"referral": referral, "assessability": assess_meta}, assess


@dataclass
class Trained:
    """What :func:`train_stage` hands to :func:`seal_stage`."""

    result: Any
    metadata: ModelMetadata
    val: list[Record]
    test: list[Record]
    others: dict[str, list[Record]]


def build_model(request: BuildRequest, log: Log = print_log) -> ModelMetadata:
    """Train, calibrate, evaluate and save a model file; returns its final metadata."""
    return seal_stage(request, train_stage(request, log), log)


def train_stage(request: BuildRequest, log: Log = print_log) -> Trained:
    """Load the data and train (every data-parallel rank runs this; see ``request.context``).

    On rank 0 the result goes on to :func:`seal_stage`; the other ranks are done after it.
    """
    taxonomy = load_taxonomy()
    train, val, test, others, split_fingerprint = load_training_sets(request, log)
    train = train + list(request.extra_records)
    val = val + list(request.validation_records)
    log(f"split {request.split_path}" + "".join(f" + {s}" for _, s in request.also)
        + f": train {len(train)}, val {len(val)}, test {len(test)}"
        + "".join(f", {name} {len(r)}" for name, r in others.items()))

    parent, initial_state, parent_training = request.parent_version, None, {}
    if request.init_model is not None:
        init_metadata, initial_state = initial_weights(request.init_model, request.config,
                                                       taxonomy.classes)
        parent = parent or init_metadata.model_version
        parent_training = {k: v for k, v in init_metadata.training.items()
                           if k not in ("history", "parent_training")}
        log(f"starting from {request.init_model} ({init_metadata.model_version})")
    result = train_classifier(train, val, taxonomy.classes, request.config,
                              request.cache_dir, log, initial_state=initial_state,
                              context=request.context, cases=len(request.extra_records))
    created = dt.datetime.now(dt.UTC)
    version = request.version or f"{Path(request.output).stem}-{created:%Y%m%dT%H%M%S}"
    metadata = ModelMetadata(
        model_version=version, architecture=request.config.architecture,
        classes=list(taxonomy.classes), taxonomy=taxonomy.to_dict(),
        preprocess=request.config.preprocess.to_dict(),
        data_fingerprint=fingerprint(train) + ":" + split_fingerprint,
        created_at=created.isoformat(timespec="seconds"),
        parent_version=parent,
        training={**request.config.to_dict(), "seconds": result.seconds,
                  "init_model": parent if request.init_model is not None else "",
                  "parent_training": parent_training,
                  "history": result.history, "source": request.source,
                  "split": str(request.split_path), "train_images": len(train),
                  "also": [[spec, str(path)] for spec, path in request.also],
                  "run": request.run,
                  "processes": request.context.world if request.context else 1,
                  "hardware": training_hardware(request),
                  "extra_records": len(request.extra_records)},
        training_log_prior=_training_prior(request.config, result.train_labels,
                                           len(taxonomy.classes)),
    )
    return Trained(result, metadata, list(val), list(test), others)


def seal_stage(request: BuildRequest, trained: Trained, log: Log = print_log) -> ModelMetadata:
    """Calibrate on the validation pool, evaluate, and save the model file (rank 0)."""
    taxonomy = load_taxonomy()
    result, metadata, val, test = trained.result, trained.metadata, trained.val, trained.test
    state = result.network.state_dict()
    save_model_file(request.output, state, metadata)

    log("fitting temperature, referral and assessability thresholds on validation")
    val_outputs = run_model(Classifier.load(request.output, warm_up=False), val, log=log)
    temperature, points, assess = fit_operating_points(
        val_outputs, taxonomy, result.train_features, result.train_labels,
        request.target_sensitivity, request.false_rejection)
    offsets = fit_offsets(val_outputs, taxonomy, temperature, request.min_sensitivity, log)
    training = {**metadata.training, "min_sensitivity": dict(request.min_sensitivity)}
    metadata = dataclasses.replace(metadata, temperature=temperature, training=training,
                                   class_bias=[float(o) for o in offsets], **points)
    state = {**state, **assess.state()}
    report_dir = request.report_dir or Path(f"{request.output}.reports")
    return evaluate_and_seal(request.output, state, metadata, test, request.eval_sources,
                             report_dir, log, trained.others)


def _training_prior(config: TrainConfig, labels: np.ndarray, num_classes: int) -> list[float]:
    """The training population's prior, which shown probabilities put back (stored in the file).

    A logit-adjusted loss leaves the prior of the images it was shown out of the logits (with
    replay, that of the visited stream, see :func:`skinstation.training.losses.class_counts`);
    the probabilities the station shows put back the prior of the labelled population the model
    serves: the training labels, each counted once.
    """
    if config.class_weighting != "logit_adjusted":
        return []
    return [float(v) for v in log_prior(labels, num_classes)]


def fit_offsets(val_outputs: ModelOutputs, taxonomy: Taxonomy, temperature: float,
                min_sensitivity: dict[str, float], log: Log) -> np.ndarray:
    """Cost-sensitive decision offsets from validation (zeros when none is asked for)."""
    if not min_sensitivity:
        return np.zeros(len(taxonomy.classes))
    protected = {taxonomy.classes.index(c): v for c, v in min_sensitivity.items()}
    # on the balanced scores (no training prior): the classifier takes the prior out of its
    # decision again, see Classifier.predicted_classes
    offsets = fit_decision_offsets(softmax(val_outputs.logits, temperature),
                                   class_labels(val_outputs.records, taxonomy), protected)
    log("decision offsets (validation): " + ", ".join(
        f"{c} {o:+.2f}" for c, o in zip(taxonomy.classes, offsets, strict=True)))
    return offsets


def evaluate_and_seal(output: Path, state: dict[str, Any], metadata: ModelMetadata,
                      test: Sequence[Record], eval_sources: Sequence[str], report_dir: Path,
                      log: Log, other_tests: dict[str, list[Record]] | None = None,
                      ) -> ModelMetadata:
    """Save, evaluate (locked test, other clinics' tests, extra sources), store, re-save."""
    taxonomy = load_taxonomy()
    save_model_file(output, state, metadata)
    classifier = Classifier.load(output, warm_up=False)
    evaluations: dict[str, Any] = {}
    named: list[tuple[str, Sequence[Record] | None]] = [("test", test)]
    named += list((other_tests or {}).items()) + [(s, None) for s in eval_sources]
    for name, subset in named:
        if subset is None:
            subset, extra_report = load_source(name)
            log(extra_report.summary())
            label = Path(name.split(":", 1)[-1]).name
        else:
            label = name
        if not subset:
            log(f"[{label}] no images: not evaluated")
            continue
        outputs = run_model(classifier, subset, log=log)
        metrics = compute_metrics(outputs, taxonomy, classifier.temperature,
                                  classifier.referral_threshold)
        write_report(metrics, list(taxonomy.classes), report_dir / label,
                     f"{metadata.model_version} on {label} ({name})")
        evaluations[label] = metrics
        log(summary_line(label, metrics))
    compact = {name: summarise(m) for name, m in evaluations.items()}
    return save_model_file(output, state, dataclasses.replace(metadata, metrics=compact))


def summarise(metrics: dict[str, Any]) -> dict[str, Any]:
    """The metrics worth storing in a model file (no curves, no reliability bins)."""
    keep = {k: v for k, v in metrics.items() if k not in ("reliability", "triage", "subgroups")}
    keep["triage"] = {k: v for k, v in metrics["triage"].items() if k != "roc"}
    keep["subgroups"] = metrics.get("subgroups", {})
    return keep


def summary_line(label: str, metrics: dict[str, Any]) -> str:
    """One line of headline figures."""
    referral = metrics.get("referral", {})
    return (
        f"[{label}] balanced accuracy {metrics['balanced_accuracy']:.3f}, melanoma sensitivity "
        f"{metrics['per_class']['mel']['sensitivity']:.3f}, ECE {metrics['ece']:.3f}, "
        f"cancer AUC {metrics['triage']['cancer_auc']:.3f}, referral sensitivity "
        f"{referral.get('sensitivity', float('nan')):.3f} / specificity "
        f"{referral.get('specificity', float('nan')):.3f}"
    )
