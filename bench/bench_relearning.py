"""A clinic's re-learning, end to end, through the real station, sync, review and job paths.

The reference design's promise: a clinic whose images differ from the training data (here
PAD-UFES-20's smartphone photographs) sends its cases, a dermatologist confirms them, and the
engine's next model does better on that clinic's *new* patients without getting worse
anywhere else. This script does all of it with real parts on 127.0.0.1:

1. an engine (``skinstation engine serve`` over HTTPS, its own process) with the current
   model registered and deployed, base data HAM10000 + the ISIC archive's other clinics;
2. a station (``StationService``) enrolled with a one-time code; every image of the
   PAD-UFES-20 *training* patients (committed patient-level split) is captured through the
   simulated dermatoscope, classified on the station and saved under its patient's pseudonym;
3. the station syncs (the real ingest API); a dermatologist account reviews every case
   through the review API with the dataset's diagnosis;
4. an admin starts a retraining job; ``skinstation engine worker --once`` runs it (warm
   start from the deployed model, the cases replayed with the base data) and the gate
   decides on the locked HAM10000 test set and the other clinics' test set;
5. the station syncs again, installs the signed model and classifies a PAD-UFES-20 *test*
   patient's image with it.

It prints the before/after table: PAD-UFES-20 test patients (balanced accuracy, melanoma and
referral sensitivity), the locked HAM10000 test and the other clinics (from the job's gate
report), and the job's wall time. The engine and station live in ``--work`` (a temporary
folder by default). The TLS test CA and engine process come from the test helpers
(``tests/test_engine_helpers.py``), so this bench and the end-to-end tests drive the same
real server the same way.

Usage::

    .venv/bin/python bench/bench_relearning.py --data-dir ../shared/data [--model M]
        [--full-epochs 2] [--base-visits 0.25] [--case-visits 4]
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from skinstation.auth import Role  # noqa: E402
from skinstation.camera import SimulatedDermatoscope  # noqa: E402
from skinstation.engine.models import service as registry  # noqa: E402
from skinstation.engine.models.models import ModelStatus  # noqa: E402
from skinstation.inference.classifier import Classifier  # noqa: E402
from skinstation.inference.model_file import read_metadata  # noqa: E402
from skinstation.resources import DEFAULT_MODEL_PATH  # noqa: E402
from skinstation.services.station import StationService  # noqa: E402
from skinstation.sync.credentials import CredentialStore  # noqa: E402
from skinstation.sync.runner import SyncRunner, enroll_station  # noqa: E402
from skinstation.training.evaluation import compute_metrics, run_model  # noqa: E402
from skinstation.training.sources import Record, load_source  # noqa: E402
from skinstation.training.splits import load_split  # noqa: E402
from tests.test_engine_helpers import (  # noqa: E402
    ADMIN_PASSWORD,
    DERM_PASSWORD,
    EngineUnderTest,
    file_keyring,
    make_tls,
    start_engine,
    station_settings,
)

PASSWORD = "clinic-passphrase-2026"


def _pad(data_dir: Path) -> tuple[list[Record], list[Record]]:
    records, _ = load_source(f"pad-ufes-20:{data_dir / 'pad-ufes-20'}")
    split = load_split(ROOT / "resources" / "splits" / "pad-ufes-20.csv", records)
    return split.select(records, "train"), split.select(records, "test")


def _figures(model: Path, records: Sequence[Record]) -> dict[str, float]:
    classifier = Classifier.load(model, warm_up=False)
    outputs = run_model(classifier, list(records), log=lambda message: None)
    metrics = compute_metrics(outputs, classifier.taxonomy, classifier.temperature,
                              classifier.referral_threshold, n_boot=200)
    return {"balanced_accuracy": metrics["balanced_accuracy"],
            "balanced_accuracy_ci": metrics["balanced_accuracy_ci"],
            "mel_sensitivity": metrics["per_class"]["mel"]["sensitivity"],
            "referral_sensitivity": metrics["referral"]["sensitivity"],
            "referral_specificity": metrics["referral"]["specificity"],
            "not_assessable": metrics["decision_rule"]["not_assessable"]}


def _capture_clinic(service: StationService, cases: Sequence[Record]) -> dict[str, Record]:
    """Capture every case at the station, one visit per patient; returns uid → record."""
    nurse = service.login("nurse", PASSWORD)
    by_uid: dict[str, Record] = {}
    visits: dict[str, int] = {}
    with SimulatedDermatoscope([r.image_path for r in cases], fps=0, loop=False) as source:
        for record in cases:
            frame = source.read()
            if record.patient_id not in visits:
                patient = service.find_or_create_patient(nurse, record.patient_id)
                visits[record.patient_id] = service.start_visit(nurse, patient.id).id
            prediction = service.classify(frame.pixels)
            saved = service.save_capture(
                nurse, visits[record.patient_id], frame, band="white",
                body_site=record.attributes.get("localization") or "unknown",
                access_time=dt.datetime.now(dt.UTC), prediction=prediction)
            by_uid[saved.capture.uid] = record
    return by_uid


def _review_all(engine: EngineUnderTest, by_uid: dict[str, Record]) -> int:
    """The dermatologist gives every synced case its dataset diagnosis (the review API)."""
    derm = engine.login("drlee", DERM_PASSWORD)
    reviewed = 0
    while True:
        queue = engine.get("/review/queue", derm).json()
        if not queue:
            return reviewed
        for item in queue:
            record = by_uid[item["uid"]]
            answer = engine.post(f"/review/captures/{item['capture_id']}", derm,
                                 json={"action": "correct", "code": record.dx})
            if answer.status_code != 201:
                raise RuntimeError(f"review refused: {answer.status_code} {answer.text}")
            reviewed += 1


def run(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    """Everything in the module docstring; returns the figures."""
    train_cases, test_patients = _pad(args.data_dir)
    if args.limit:
        train_cases = train_cases[: args.limit]
    options = {
        "base_source": "ham10000:ham10000",
        "locked_split": str(ROOT / "resources" / "splits" / "ham10000.csv"),
        "other_sources": [f"isic-archive:isic-archive="
                          f"{ROOT / 'resources' / 'splits' / 'isic-archive.csv'}"],
        "full_epochs": args.full_epochs, "full_lr": args.full_lr,
        "base_visits": args.base_visits, "case_visits": args.case_visits,
    }
    engine = start_engine(work, args.data_dir, make_tls(work / "tls"), options=options)
    try:
        current = read_metadata(args.model).model_version
        registry.register_model(engine.db, args.model, status=ModelStatus.PROMOTED,
                                actor="bench")
        registry.deploy(engine.db, current, action="initial", actor="bench",
                        reason="the clinic's current model")
        admin = engine.login("admin", ADMIN_PASSWORD)

        settings = station_settings(work, engine.url, engine.tls, name="clinic-pad")
        settings = settings.replace(model_path=args.model)
        service = StationService(settings)
        service.create_first_admin("admin", "Admin", PASSWORD)
        station_admin = service.login("admin", PASSWORD)
        service.create_operator(station_admin, "nurse", "Nurse", Role.STAFF, PASSWORD)
        credentials = CredentialStore(settings.station_id, file_keyring(work / "keyring.cfg"))
        code = engine.enrollment_code(admin, "PAD clinic")
        enroll_station(settings, code, credentials)
        runner = SyncRunner(settings, service.database, credentials=credentials,
                            installer=lambda path, sha: service.models.install(path, sha).version)

        started = time.monotonic()
        by_uid = _capture_clinic(service, train_cases)
        while runner.sync_once().queue_length:
            pass
        reviewed = _review_all(engine, by_uid)
        capture_seconds = time.monotonic() - started
        print(f"[bench] {len(by_uid)} captures synced, {reviewed} reviewed "
              f"({capture_seconds / 60:.1f} min)", file=sys.stderr, flush=True)

        job = engine.post("/admin/training-jobs", admin, json={}).json()
        env = {**os.environ, "SKINSTATION_CONFIG": str(engine.config),
               **engine.server.env}  # the engine's keyring: its images are encrypted at rest
        env.pop("SKINSTATION_HOME", None)
        started = time.monotonic()
        worker = subprocess.run(
            [sys.executable, "-m", "skinstation.cli", "engine", "worker", "--once"],
            env=env, cwd=ROOT, stderr=subprocess.PIPE, text=True, check=False)
        job_seconds = time.monotonic() - started
        if worker.returncode != 0:
            raise RuntimeError(f"worker failed:\n{worker.stderr[-4000:]}")
        done = engine.get(f"/admin/training-jobs/{job['job_id']}", admin).json()
        candidate = done["candidate_version"]
        candidate_path = registry.model_path(engine.db, candidate)

        status = runner.sync_once()
        with SimulatedDermatoscope([test_patients[0].image_path], fps=0) as source:
            used = service.classify(source.read().pixels).model_version
        return {"job": done, "job_seconds": job_seconds, "station_model": used,
                "station_status": (status.state, status.model_version),
                "cases": len(by_uid), "before": _figures(args.model, test_patients),
                "after": _figures(candidate_path, test_patients), "current": current,
                "candidate": candidate, "test_patients": len(test_patients)}
    finally:
        engine.server.stop()
        engine.db.dispose()


def report(result: dict[str, Any]) -> str:
    """The before/after table."""
    job, report_ = result["job"], result["job"]["report"]
    lines = [f"job {job['job_id']}: {job['outcome']} in {result['job_seconds'] / 60:.1f} min "
             f"({result['cases']} PAD-UFES-20 training-patient cases; warm start "
             f"{report_.get('warm_start')}, {report_.get('full_epochs')} epoch(s))",
             f"gate: {'promote' if report_['gate']['promote'] else 'reject'}"
             + "".join(f"\n  - {r}" for r in report_["gate"]["reasons"]),
             f"station after sync: {result['station_status']}, classified a test-patient "
             f"image with {result['station_model']}", "",
             f"{'set':<28} {'figure':<22} {'before':>8} {'after':>8} {'change':>8}"]

    def row(where: str, name: str, before: float, after: float) -> None:
        lines.append(f"{where:<28} {name:<22} {before:>8.3f} {after:>8.3f} "
                     f"{after - before:>+8.3f}")

    before, after = result["before"], result["after"]
    where = f"PAD-UFES-20 test ({result['test_patients']})"
    for name in ("balanced_accuracy", "mel_sensitivity", "referral_sensitivity",
                 "referral_specificity", "not_assessable"):
        row(where, name, before[name], after[name])
    for label, key in (("HAM10000 locked test", None), ("other clinics", "other_clinics")):
        block = report_ if key is None else report_.get(key)
        if not block:
            continue
        for name, pick in (("balanced_accuracy", lambda m: m["balanced_accuracy"]),
                           ("referral_sensitivity", lambda m: m["referral"]["sensitivity"])):
            row(label, name, pick(block["current"]), pick(block["candidate"]))
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the bench and print its table."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data-dir", type=Path, default=ROOT.parent / "shared" / "data")
    parser.add_argument("--model", type=Path, default=DEFAULT_MODEL_PATH)
    parser.add_argument("--work", type=Path, default=None)
    parser.add_argument("--full-epochs", type=int, default=2)
    parser.add_argument("--full-lr", type=float, default=5e-5)
    parser.add_argument("--base-visits", type=float, default=0.25)
    parser.add_argument("--case-visits", type=float, default=4.0)
    parser.add_argument("--limit", type=int, default=0, help="smoke run: first N cases only")
    args = parser.parse_args(argv)
    args.data_dir = args.data_dir.resolve()
    if args.work is not None:
        args.work.mkdir(parents=True, exist_ok=True)
        print(report(run(args, args.work)))
        return 0
    with tempfile.TemporaryDirectory(prefix="bench-relearning-") as work:
        print(report(run(args, Path(work))))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
