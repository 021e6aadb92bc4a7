"""One retraining job: data, training, locked-test evaluation, the gate, registration.

Run by the worker process (never by the API). Steps:

1. Load the base dataset (``engine.base_source``) and its locked split (``engine.locked_split``;
   it must exist: the test part is the locked test set).
2. Collect synced cases with a dermatologist's final label (latest engine review; a review a
   station forwarded is only a proposal and never trains) that is a fine class, taken in a
   white-light band, whose image verifies. Cases that show a validation or locked-test image
   (even re-encoded or rescaled) are left out: the test set is never trained on.
3. Train with the learning unit (``build_model``; the cases join the training split, except
   the patients ``engine.case_validation_share`` holds out, who join the validation pool):
   by default a warm start from the deployed model's weights with its recipe (loss,
   augmentation, preprocessing), fine-tuning the whole network on the cases
   (``engine.case_visits`` per epoch) while replaying the base data and the other clinics'
   training parts (``engine.base_visits``) so nothing is forgotten. The same loop runs
   data-parallel under ``torchrun`` when ``engine.train_processes`` > 1.
4. Evaluate the candidate and the current model on the locked test set and the other
   clinics' test set (``engine.other_sources``); apply the gate to both.
5. Register the candidate with its metrics and report; promote and sign it, or keep it as
   rejected.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import shutil
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from sqlalchemy import func, select

from skinstation.core.crypto import BLOB_MAGIC
from skinstation.core.files import private_dir, write_atomically
from skinstation.core.images import ImageError
from skinstation.engine.database import EngineDatabase
from skinstation.engine.errors import EngineError
from skinstation.engine.ingest.models import Capture, ExamSession, Patient
from skinstation.engine.models import service as registry
from skinstation.engine.models.models import ModelStatus
from skinstation.engine.retraining.cases import cases_fingerprint, claim_cases, hold_out_patients
from skinstation.engine.retraining.gate import GateMetrics, decide
from skinstation.engine.retraining.schemas import JobOut
from skinstation.engine.review.models import ORIGIN_ENGINE, Review
from skinstation.inference.model_file import read_metadata
from skinstation.inference.taxonomy import load_taxonomy
from skinstation.resources import RESOURCES_DIR
from skinstation.training.sources import Record, load_source
from skinstation.training.splits import load_split

TRAINING_BANDS = ("white", "cross_polarised")
Log = Callable[[str], None]


class RetrainingError(EngineError):
    """The job cannot run (no current model, no locked split, too few reviewed cases)."""


@dataclasses.dataclass(frozen=True)
class JobOutcome:
    """What a finished job produced."""

    outcome: str
    candidate_version: str
    report: dict[str, Any]


def resolve_split(spec: str) -> Path:
    """Find the locked split file: as given, else relative to the project folder."""
    path = Path(spec).expanduser()
    if path.is_absolute() or path.is_file():
        return path
    bundled = RESOURCES_DIR.parent / path
    return bundled if bundled.is_file() else path


class HeldOutGuard:
    """Recognises images of the validation/locked-test sets, re-encoded or rescaled.

    A station may photograph (or its simulator replay) an image that is in the held-out sets;
    stored as a new PNG it has other bytes. Each image is reduced to a 32x32 grey thumbnail;
    a case whose thumbnail is within ``tolerance`` grey levels (mean absolute difference) of a
    held-out one is treated as the same image and never trained on.
    """

    SIZE = 32

    def __init__(self, records: Sequence[Record], tolerance: float = 6.0) -> None:
        self.tolerance = tolerance
        thumbs = [self.thumbnail(Path(r.image_path)) for r in records]
        self.thumbs = (np.stack(thumbs) if thumbs
                       else np.empty((0, self.SIZE * self.SIZE), np.float32))

    @classmethod
    def thumbnail(cls, path: Path) -> np.ndarray:
        """The grey 32x32 thumbnail of an image file, flattened (float32)."""
        from skinstation.inference.preprocessing import decode_image

        grey = cv2.cvtColor(decode_image(path), cv2.COLOR_RGB2GRAY)
        small = cv2.resize(grey, (cls.SIZE, cls.SIZE), interpolation=cv2.INTER_AREA)
        return small.astype(np.float32).reshape(-1)

    def matches(self, path: Path) -> bool:
        """Whether the image at ``path`` is one of the held-out images."""
        if not len(self.thumbs):
            return False
        distance = np.abs(self.thumbs - self.thumbnail(path)).mean(axis=1)
        return bool(distance.min() <= self.tolerance)


def reviewed_cases(
    db: EngineDatabase, held_out: Sequence[Record], work_dir: Path | None = None
) -> tuple[list[Record], Counter[str]]:
    """Reviewed cases usable for training, and counts of those left out (by reason).

    Station captures and providers' consented images alike: what counts is a
    dermatologist's final label, the latest review made on the engine. A review a station
    sent is a proposal (a station token cannot make training data) and is not used.

    An image encrypted at rest is verified decrypted and given to training as a plaintext
    working copy in ``work_dir`` (owner-only; default ``<jobs>/cases``), which
    :func:`run_job` deletes once training is over.
    """
    classes = set(load_taxonomy().classes)
    guard = HeldOutGuard(held_out)
    skipped: Counter[str] = Counter()
    latest = (select(Review.capture_id, func.max(Review.id).label("rid"))
              .where(Review.origin == ORIGIN_ENGINE.value)
              .group_by(Review.capture_id).subquery())
    records: list[Record] = []
    with db.transaction() as session:
        rows = list(session.execute(
            select(Capture, Review.code, Patient.pseudonym)
            .join(latest, latest.c.capture_id == Capture.id)
            .join(Review, Review.id == latest.c.rid)
            .outerjoin(ExamSession, ExamSession.id == Capture.session_id)
            .outerjoin(Patient, Patient.id == ExamSession.patient_id)
            .order_by(Capture.id)))
    for capture, code, pseudonym in rows:
        path: Path | None = None
        if code not in classes:
            skipped["final label is not a diagnosis class"] += 1
        elif capture.band not in TRAINING_BANDS:
            skipped[f"band not in {'/'.join(TRAINING_BANDS)}"] += 1
        elif (path := _readable_copy(db, capture, work_dir or db.paths.jobs / "cases")) is None:
            skipped["image missing or corrupt"] += 1
        elif guard.matches(path):
            skipped["same image as a validation/locked-test image"] += 1
        else:
            records.append(Record(path, f"engine-{capture.uid}", code, f"engine-{capture.uid}",
                                  _patient_key(capture, pseudonym), "engine"))
    return records, skipped


def _readable_copy(db: EngineDatabase, capture: Capture, work_dir: Path) -> Path | None:
    """The case's image file as training can read it (None: missing or corrupt)."""
    path = db.images.path_for(capture.image_ref)
    try:
        data = db.images.read(capture.image_ref, capture.image_sha256)
    except ImageError:
        return None
    with open(path, "rb") as handle:
        if handle.read(len(BLOB_MAGIC)) != BLOB_MAGIC:
            return path  # stored in plaintext (verified above)
    copy = work_dir / f"{capture.uid}.{capture.image_format}"
    private_dir(work_dir)
    write_atomically(copy, data)
    return copy


def _patient_key(capture: Capture, pseudonym: str | None) -> str:
    """Who the case shows: a station's patient, or a provider's end user."""
    if capture.provider_id is not None:
        return f"engine-provider{capture.provider_id}:{capture.end_user_ref}"
    return f"engine-station{capture.station_id}:{pseudonym}"


def evaluate_locked(model_path: Path, test: Sequence[Record], log: Log,
                    n_boot: int = 200) -> dict[str, Any]:
    """Evaluate a model file on the locked test set; returns the compact metrics."""
    from skinstation.inference.classifier import Classifier
    from skinstation.training.evaluation import compute_metrics, run_model
    from skinstation.training.pipeline import summarise

    classifier = Classifier.load(model_path, warm_up=False)
    outputs = run_model(classifier, list(test), log=log)
    metrics = compute_metrics(outputs, classifier.taxonomy, classifier.temperature,
                              classifier.referral_threshold, n_boot=n_boot)
    return summarise(metrics)


def locked_test_metrics(model_path: Path, split_path: Path, split: Any,
                        test: Sequence[Record], log: Log,
                        key: str = "test") -> tuple[dict[str, Any], str]:
    """A model's metrics on a locked test set (``test``, or ``other-clinics``), and their origin.

    A model built by the learning unit on this very split file (its ``split`` for the base
    data, one of its ``also`` entries for other clinics) and these records (its data
    fingerprint names the split's records fingerprint) already holds the metrics, computed by
    the same evaluation; they are reused. Any other model is evaluated, and so is one whose
    stored figures predate the referral as the station shows it (no ``threshold_only`` part:
    its referral counted flags on images the station rejects, so the candidate would be held
    to a figure the deployed model never showed).
    """
    from skinstation.inference.model_file import read_metadata

    metadata = read_metadata(model_path)
    stored = metadata.metrics.get(key)
    training = metadata.training
    splits = ([str(training.get("split", ""))] if key == "test"
              else [str(entry[1]) for entry in training.get("also", [])])
    same_split = any(s and Path(s).resolve() == split_path.resolve() for s in splits)
    fingerprints = metadata.data_fingerprint.rpartition(":")[2].split("+")
    shown = "threshold_only" in (stored or {}).get("referral", {})
    if (stored and shown and same_split and stored.get("images") == len(test)
            and split.records_fingerprint in fingerprints):
        return stored, "stored in the model file (built on this locked split)"
    return evaluate_locked(model_path, test, log), "evaluated by this job"


def other_clinics(engine: Any, data_dir: Path | None,
                  log: Log) -> tuple[list[tuple[str, Path]], list[Record], Any, Path | None]:
    """The other clinics' sources (``SPEC=SPLIT``) and the first one's test part and split.

    Raises:
        RetrainingError: A split file named there does not exist.
    """
    also: list[tuple[str, Path]] = []
    for item in engine.other_sources:
        spec, _, split_name = item.partition("=")
        split_file = resolve_split(split_name)
        if not split_file.is_file():
            raise RetrainingError(f"other clinics' split {split_file} not found "
                                  f"(engine.other_sources {item!r})")
        also.append((_absolute_source(spec, data_dir), split_file))
    if not also:
        return also, [], None, None
    records, load_report = load_source(also[0][0])
    log(load_report.summary())
    split = load_split(also[0][1], records)
    return also, split.select(records, "test"), split, also[0][1]


def train_candidate(db: EngineDatabase, job: JobOut, request: Any, log: Log) -> None:
    """Train the candidate in this process or, with ``train_processes`` > 1, under torchrun."""
    processes = int(job.params.get("train_processes", db.settings.engine.train_processes))
    if processes > 1:
        from skinstation.engine.retraining.ddp import run_torchrun

        run_torchrun(request, processes, db.paths.jobs / f"job-{job.job_id}", log)
        return
    from skinstation.training.pipeline import build_model

    build_model(request, log=log)


RECIPE_FIELDS = ("architecture", "trunk_blocks", "freeze_batchnorm", "finetune_lr", "head_lr",
                 "weight_decay", "label_smoothing", "class_weighting", "feature_flips",
                 "average_last", "full_batch_size", "full_from_block", "full_batchnorm_stats",
                 "seed")


def inherited_recipe(current_model: Path) -> dict[str, Any]:
    """The current model's training recipe (loss, augmentation, batch...) for its successor.

    Preprocessing is inherited separately, so a candidate sees images exactly as the model it
    must beat; epochs, learning rate and replay come from the engine settings or the job's
    parameters.
    """
    from skinstation.training.augment import AugmentConfig

    training = read_metadata(current_model).training
    recipe = {name: training[name] for name in RECIPE_FIELDS if name in training}
    if isinstance(training.get("augment"), dict):
        known = {f.name for f in dataclasses.fields(AugmentConfig)}
        recipe["augment"] = AugmentConfig(**{k: v for k, v in training["augment"].items()
                                             if k in known})
    return recipe


def run_job(db: EngineDatabase, job: JobOut, log: Log) -> JobOutcome:
    """Run one retraining job end to end (see the module docstring).

    Raises:
        RetrainingError: The job cannot run; the message says why.
    """
    from skinstation.inference.preprocessing import PreprocessConfig
    from skinstation.training.pipeline import BuildRequest
    from skinstation.training.trainer import TrainConfig

    settings, engine = db.settings, db.settings.engine
    current = registry.current_version(db)
    if current is None:
        raise RetrainingError("no current model to compare against; import one with "
                              "'skinstation engine models import FILE'")
    split_path = resolve_split(engine.locked_split)
    if not split_path.is_file():
        raise RetrainingError(f"locked split {split_path} not found; the locked test set must "
                              "exist before retraining")
    source = engine.base_source
    records, load_report = load_source(source, data_dir=settings.data_dir)
    log(load_report.summary())
    split = load_split(split_path, records)
    test, val = split.select(records, "test"), split.select(records, "val")
    cases_dir = db.paths.jobs / f"job-{job.job_id}" / "cases"  # plaintext working copies
    extras, skipped = reviewed_cases(db, list(test) + list(val), cases_dir)
    log(f"reviewed cases: {len(extras)} used, skipped {dict(skipped) or 'none'}")
    if len(extras) < engine.min_reviewed_cases:
        raise RetrainingError(f"only {len(extras)} usable reviewed case(s); retraining needs at "
                              f"least {engine.min_reviewed_cases} (engine.min_reviewed_cases)")

    job_dir = db.paths.jobs / f"job-{job.job_id}"
    job_dir.mkdir(parents=True, exist_ok=True)
    version = f"retrain-{job.job_id}-{dt.datetime.now(dt.UTC):%Y%m%dT%H%M%S}"
    params = job.params
    current_path = registry.model_path(db, current.version)
    warm = bool(params.get("warm_start", engine.warm_start))
    config = TrainConfig(
        **inherited_recipe(current_path),
        preprocess=PreprocessConfig.from_dict(
            {**read_metadata(current_path).preprocess,
             **({} if warm else params.get("preprocess", {}))}),
        views=int(params.get("views", engine.train_views)),
        head_epochs=int(params.get("head_epochs", engine.head_epochs)),
        finetune_epochs=int(params.get("finetune_epochs", engine.finetune_epochs)),
        batch_size=int(params.get("batch_size", engine.batch_size)),
        full_epochs=int(params.get("full_epochs", engine.full_epochs)) if warm else 0,
        full_lr=float(params.get("full_lr", engine.full_lr)),
        full_base_visits=float(params.get("base_visits", engine.base_visits)),
        full_case_visits=float(params.get("case_visits", engine.case_visits)),
        threads=engine.train_threads,
    )
    also, other_test, other_split, other_split_path = other_clinics(engine, settings.data_dir,
                                                                    log)
    extras = claim_cases(db, job.job_id, extras, log)  # cases erased meanwhile are left out
    if len(extras) < engine.min_reviewed_cases:
        raise RetrainingError(f"only {len(extras)} reviewed case(s) left after erasures; "
                              f"retraining needs at least {engine.min_reviewed_cases}")
    share = float(params.get("case_validation_share", engine.case_validation_share))
    train_cases, validation_cases = hold_out_patients(extras, share)
    if validation_cases:
        log(f"reviewed cases: {len(validation_cases)} of {len(extras)} (whole patients, "
            f"{share:.0%}) held out for validation, {len(train_cases)} trained on")
    candidate_path = job_dir / f"{version}.safetensors"
    source_spec = _absolute_source(source, settings.data_dir)
    # the cache is shared by jobs: prepared base images (keyed by path and preprocessing) are
    # made once, not again for every job; a retried job resumes its own checkpoint there
    request = BuildRequest(
        source=source_spec, split_path=split_path, output=candidate_path, config=config,
        extra_records=train_cases, validation_records=validation_cases, version=version,
        parent_version=current.version,
        cache_dir=db.paths.home / "cache", report_dir=job_dir / "reports", also=also,
        init_model=current_path if warm else None,
        min_sensitivity=dict(read_metadata(current_path).training.get("min_sensitivity", {})),
    )
    if warm:
        log(f"retraining from the deployed model {current.version}: whole network, "
            f"{config.full_epochs} epoch(s), {len(train_cases)} reviewed case(s) at "
            f"{config.full_case_visits} and base data at {config.full_base_visits} visits per "
            f"image and epoch, other clinics: {len(also)} source(s)")
    else:
        log(f"retraining from ImageNet weights with {len(extras)} reviewed case(s)")
    started = dt.datetime.now(dt.UTC)
    try:
        train_candidate(db, job, request, log)
    finally:
        shutil.rmtree(cases_dir, ignore_errors=True)
    seconds = (dt.datetime.now(dt.UTC) - started).total_seconds()

    log(f"evaluating candidate {version} and current {current.version} on the locked test set")
    candidate_metrics, candidate_source = locked_test_metrics(
        candidate_path, split_path, split, test, log)
    current_metrics, current_source = locked_test_metrics(
        registry.model_path(db, current.version), split_path, split, test, log)
    others: dict[str, Any] = {}
    if other_split is not None and other_split_path is not None:
        log("evaluating both on the other clinics' test set")
        for who, path in (("candidate", candidate_path), ("current", current_path)):
            others[who] = locked_test_metrics(path, other_split_path, other_split, other_test,
                                              log, key="other-clinics")
    decision = decide(
        GateMetrics.from_metrics(candidate_metrics), GateMetrics.from_metrics(current_metrics),
        max_balanced_accuracy_drop=engine.max_balanced_accuracy_drop,
        max_sensitivity_drop=engine.max_sensitivity_drop,
        other_candidate=GateMetrics.from_metrics(others["candidate"][0]) if others else None,
        other_current=GateMetrics.from_metrics(others["current"][0]) if others else None,
    )
    report = {
        "job_id": job.job_id, "base_source": source_spec, "locked_split": str(split_path),
        "locked_test_images": len(test), "reviewed_cases_used": len(extras),
        "reviewed_cases_validation": len(validation_cases),
        "reviewed_cases_skipped": dict(skipped), "training_seconds": round(seconds, 1),
        "cases_fingerprint": cases_fingerprint(extras),
        "train_processes": int(params.get("train_processes", engine.train_processes)),
        "current_version": current.version, "candidate": candidate_metrics,
        "current": current_metrics, "gate": decision.to_dict(),
        "metrics_source": {"candidate": candidate_source, "current": current_source},
        "warm_start": warm, "base_visits": config.full_base_visits,
        "case_visits": config.full_case_visits, "full_epochs": config.full_epochs,
    }
    if others:
        report["other_clinics"] = {
            "split": str(other_split_path), "images": len(other_test),
            "candidate": others["candidate"][0], "current": others["current"][0],
            "metrics_source": {who: others[who][1] for who in others}}
    actor = f"gate:job-{job.job_id}"
    registry.register_model(db, candidate_path, status=ModelStatus.CANDIDATE, actor=actor,
                            gate_metrics={"locked_test": candidate_metrics,
                                     **({"other_clinics": others["candidate"][0]}
                                        if others else {})}, report=report,
                            job_id=job.job_id)
    candidate_path.unlink()  # the registered copy lives in the model storage
    if decision.promote:
        registry.promote(db, version, actor=actor,
                         reason=f"passed the gate against {current.version}")
        log(f"candidate {version} promoted and deployed")
        return JobOutcome("promoted", version, report)
    registry.reject(db, version, actor=actor, report=report)
    log(f"candidate {version} rejected: {'; '.join(decision.reasons)}")
    return JobOutcome("rejected", version, report)


def _absolute_source(spec: str, data_dir: Path | None) -> str:
    kind, sep, location = spec.partition(":")
    if not sep or len(kind) == 1:
        kind, location = "", spec
    path = Path(location).expanduser()
    if not path.is_absolute() and not path.exists() and data_dir is not None:
        path = data_dir / path
    return f"{kind}:{path.resolve()}" if kind else str(path.resolve())
