"""Engine benchmarks: capture ingest throughput over HTTPS, and retraining job time (+ DDP).

Usage::

    .venv/bin/python bench/bench_engine.py [--data-dir ../shared/data] [--captures 200]
        [--stations 20] [--workers 2] [--database-url URL] [--skip-retrain]
        [--per-class 40] [--reviewed 20] [--no-ddp]

Ingest: a real engine (``skinstation engine serve``, uvicorn, ``--workers`` processes, HTTPS
with a throwaway CA) on 127.0.0.1, SQLite by default (or ``--database-url``). Each simulated
station is a thread with its own keep-alive ``EngineClient`` uploading real HAM10000 JPEGs
(image + metadata + prediction + label) one after another, as a station's outbox does. Printed:
captures/s with 1 station and with ``--stations`` concurrent ones, and per-upload latency.
Client threads and server share this machine's cores.

Retraining: a base set of ``--per-class`` HAM10000 images per class with its locked split, a
current model built on it, ``--reviewed`` expert-reviewed synced cases, then one retraining job
run by ``skinstation engine worker --once`` (in its own process): wall time and the job's
training time. With DDP (default on) the same job again with ``train_processes=2`` under
``torchrun --nproc_per_node=2`` (gloo).
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import create_engine
from sqlalchemy.engine import make_url

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))

from skinstation.engine.accounts import service as accounts  # noqa: E402
from skinstation.engine.accounts.models import AccountRole  # noqa: E402
from skinstation.engine.database import open_engine_database  # noqa: E402
from skinstation.engine.ingest import service as ingest  # noqa: E402
from skinstation.engine.models import service as registry  # noqa: E402
from skinstation.engine.models import signing  # noqa: E402
from skinstation.engine.models.models import ModelStatus  # noqa: E402
from skinstation.engine.retraining import jobs  # noqa: E402
from skinstation.engine.review import service as review  # noqa: E402
from skinstation.engine.stations import service as stations  # noqa: E402
from skinstation.protocol.uploads import CaptureMetadata  # noqa: E402
from skinstation.settings import Settings, SyncSettings  # noqa: E402
from skinstation.sync.client import EngineClient  # noqa: E402
from tests.test_engine_helpers import EngineServer, make_tls, write_engine_config  # noqa: E402

CLASSES = ("akiec", "bcc", "bkl", "df", "mel", "nv", "vasc")


def _metadata(image: bytes, station: int, index: int) -> dict:
    now = datetime.now(UTC).isoformat()
    groups = {"skin_cancer": 0.2, "other_disease": 0.1, "benign": 0.7}
    return {
        "capture": {"uid": str(uuid.uuid4()), "band": "white", "body_site": "back",
                    "device_id": "bench-cam", "operator": "nurse", "access_time": now,
                    "capture_time": now, "saved_at": now,
                    "image_sha256": hashlib.sha256(image).hexdigest(), "image_size": len(image),
                    "image_format": "jpg", "width": 200, "height": 150},
        "session": {"ref": f"visit-{index // 5}", "operator": "nurse", "opened_at": now},
        "patient": {"pseudonym": f"S{station}-P{index // 5}"},
        "predictions": [{"model_version": "bench", "decision": "benign", "referral": False,
                         "class_probabilities": dict.fromkeys(CLASSES, 1 / 7),
                         "group_probabilities": groups, "created_at": now}],
        "labels": [{"kind": "operator", "code": "nv", "author": "nurse", "created_at": now}],
    }


def _upload_all(sync: SyncSettings, token: str, batch: list, latencies: list[float]) -> None:
    """One station: upload its captures one after another (list.append is thread-safe)."""
    client = EngineClient(sync, token=token)
    for metadata, data in batch:
        started = time.perf_counter()
        status, _ = client.upload_capture(CaptureMetadata.model_validate(metadata), data)
        if status != 201:
            raise RuntimeError(f"upload answered {status}")
        latencies.append(time.perf_counter() - started)
    client.close()


def bench_ingest(args: argparse.Namespace, work: Path) -> None:
    """Uploads per second with 1 and with ``args.stations`` concurrent stations."""
    with _private_schema(args.database_url) as url:
        _bench_ingest(args, work, url)


@contextmanager
def _private_schema(url: str) -> Iterator[str]:
    """SQLite (empty URL), or a throwaway schema of the PostgreSQL database, dropped after."""
    if not url:
        yield ""
        return
    schema = f"skinstation_bench_{uuid.uuid4().hex[:8]}"
    admin = create_engine(url)
    with admin.begin() as connection:
        connection.exec_driver_sql(f"CREATE SCHEMA {schema}")
    try:
        scoped = make_url(url).update_query_dict({"options": f"-csearch_path={schema}"})
        yield scoped.render_as_string(hide_password=False)
    finally:
        with admin.begin() as connection:
            connection.exec_driver_sql(f"DROP SCHEMA {schema} CASCADE")
        admin.dispose()


def _bench_ingest(args: argparse.Namespace, work: Path, database_url: str) -> None:
    tls = make_tls(work / "tls")
    engine = {"home": str(work / "engine")}
    if database_url:
        engine["database_url"] = database_url
    config = write_engine_config(work / "engine.toml", home=work / "engine",
                                 data_dir=args.data_dir, engine=engine)
    server = EngineServer(config, tls, workers=args.workers).start()
    db = open_engine_database(Settings.load(env={}, config_file=config))
    images = sorted((args.data_dir / "ham10000" / "images").glob("ISIC_*.jpg"))
    try:
        tokens = [stations.enroll(db, stations.create_enrollment_code(
            db, f"bench-{i}", actor="bench").code, f"bench-{i}").token
                  for i in range(args.stations + 1)]
        sync = SyncSettings(engine_url=server.url, ca_bundle=str(tls.ca_cert), retries=3,
                            timeout_seconds=60)
        offset = 0
        for label, count, per_station in (
            ("1 station", 1, args.captures),
            (f"{args.stations} stations", args.stations, max(1, args.captures // 10)),
        ):
            payloads = []
            for station in range(count):
                batch = []
                for index in range(per_station):
                    data = images[offset % len(images)].read_bytes()
                    offset += 1
                    batch.append((_metadata(data, station, index), data))
                payloads.append(batch)
            station_tokens = tokens[:count] if count > 1 else tokens[-1:]

            latencies: list[float] = []
            threads = [threading.Thread(target=_upload_all, args=(sync, token, batch, latencies))
                       for batch, token in zip(payloads, station_tokens, strict=True)]
            started = time.perf_counter()
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            elapsed = time.perf_counter() - started
            total = count * per_station
            latencies.sort()
            print(f"ingest {label:12s}: {total} captures in {elapsed:5.1f} s = "
                  f"{total / elapsed:6.1f} captures/s; latency p50 "
                  f"{statistics.median(latencies) * 1000:5.0f} ms, p95 "
                  f"{latencies[int(0.95 * (len(latencies) - 1))] * 1000:5.0f} ms", flush=True)
    finally:
        server.stop()
        db.dispose()


def _write_manifest(path: Path, ham: Path, per_class: int) -> tuple[Path, set[str]]:
    chosen: dict[str, list[dict[str, str]]] = {}
    lesions: set[str] = set()
    with open(ham / "HAM10000_metadata.csv", newline="") as stream:
        for row in csv.DictReader(stream):
            bucket = chosen.setdefault(row["dx"], [])
            if len(bucket) < per_class and row["lesion_id"] not in lesions:
                lesions.add(row["lesion_id"])
                bucket.append(row)
    used: set[str] = set()
    with open(path, "w", newline="") as stream:
        writer = csv.writer(stream)
        writer.writerow(["image", "dx", "lesion_id"])
        for dx in sorted(chosen):
            for row in chosen[dx]:
                writer.writerow([str(ham / "images" / f"{row['image_id']}.jpg"), dx,
                                 row["lesion_id"]])
                used.add(row["image_id"])
    return path, used


def _run_job(config: Path, db: object, params: dict) -> dict:
    job = jobs.create_job(db, actor="bench", params=params)
    env = {**os.environ, "SKINSTATION_CONFIG": str(config)}
    started = time.perf_counter()
    result = subprocess.run([sys.executable, "-m", "skinstation.cli", "engine", "worker",
                             "--once"], env=env, cwd=REPO_ROOT, capture_output=True, text=True,
                            check=False)
    elapsed = time.perf_counter() - started
    if result.returncode != 0:
        raise RuntimeError(result.stderr[-4000:])
    done = jobs.get_job(db, job.job_id)
    return {"wall": elapsed, "job": done}


def bench_retraining(args: argparse.Namespace, work: Path) -> None:
    """Time of a retraining job (and of the same job under DDP with 2 processes)."""
    from skinstation.training.pipeline import BuildRequest, build_model
    from skinstation.training.trainer import TrainConfig

    ham = args.data_dir / "ham10000"
    manifest, used = _write_manifest(work / "base.csv", ham, args.per_class)
    split = work / "base-split.csv"
    config_values = {"views": 2, "head_epochs": 15, "finetune_epochs": 2, "batch_size": 32}
    started = time.perf_counter()
    current = build_model(BuildRequest(
        source=f"manifest:{manifest}", split_path=split, output=work / "current.safetensors",
        config=TrainConfig(views=2, head_epochs=15, finetune_epochs=2, batch_size=32),
        cache_dir=work / "cache", version="bench-current"), log=lambda _m: None)
    print(f"current model built in {time.perf_counter() - started:5.1f} s "
          f"({args.per_class} images/class, views 2, head 15 + fine-tune 2 epochs)", flush=True)

    engine = {"home": str(work / "rt-engine"), "base_source": f"manifest:{manifest}",
              "locked_split": str(split), "train_views": config_values["views"],
              "head_epochs": config_values["head_epochs"],
              "finetune_epochs": config_values["finetune_epochs"],
              "batch_size": config_values["batch_size"]}
    config = write_engine_config(work / "rt.toml", home=work / "rt-engine",
                                 data_dir=args.data_dir, engine=engine)
    db = open_engine_database(Settings.load(env={}, config_file=config))
    signing.ensure_signing_key(db, actor="bench")
    registry.register_model(db, work / "current.safetensors", status=ModelStatus.PROMOTED,
                            actor="bench")
    registry.deploy(db, current.model_version, action="initial", actor="bench", reason="bench")
    station = stations.authenticate(db, stations.enroll(
        db, stations.create_enrollment_code(db, "bench", actor="bench").code, "bench").token)
    accounts.create_account(db, "drbench", "bench-passphrase-1", AccountRole.DERMATOLOGIST,
                            actor="bench")
    derm = accounts.authenticate(db, accounts.login(db, "drbench", "bench-passphrase-1").token)
    with open(ham / "HAM10000_metadata.csv", newline="") as stream:
        rows = [r for r in csv.DictReader(stream) if r["image_id"] not in used][: args.reviewed]
    for index, row in enumerate(rows):
        data = (ham / "images" / f"{row['image_id']}.jpg").read_bytes()
        metadata = CaptureMetadata.model_validate(_metadata(data, 0, index))
        stored = ingest.store_capture(db, station, metadata, data)
        if row["dx"] == "nv":
            review.submit_review(db, derm, stored.capture_id, "confirm")
        else:
            review.submit_review(db, derm, stored.capture_id, "correct", row["dx"])

    for label, params in (("1 process", {}),) + ((("DDP 2 processes",
                                                  {"train_processes": 2}),) if args.ddp else ()):
        outcome = _run_job(config, db, params)
        job = outcome["job"]
        report = job.report
        print(f"retraining job ({label}): {outcome['wall']:5.1f} s wall "
              f"(training {report.get('training_seconds')} s), {report.get('reviewed_cases_used')}"
              f" reviewed cases + base train split, locked test {report.get('locked_test_images')}"
              f" images; outcome {job.outcome}; candidate balanced accuracy "
              f"{report['candidate']['balanced_accuracy']:.3f} vs current "
              f"{report['current']['balanced_accuracy']:.3f}", flush=True)
        if params:
            from skinstation.inference.model_file import read_metadata

            distributed = read_metadata(registry.model_path(
                db, job.candidate_version)).training["distributed"]
            print(f"  DDP: backend {distributed['backend']}, world size "
                  f"{distributed['world_size']}, images per rank "
                  f"{distributed['images_per_rank']}, identical weights on all ranks: "
                  f"{len(set(distributed['weight_checksums'])) == 1}", flush=True)
    db.dispose()


def main() -> int:
    """Run the benchmarks and print their figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, default=REPO_ROOT.parent / "shared" / "data")
    parser.add_argument("--captures", type=int, default=200, help="uploads by the lone station")
    parser.add_argument("--stations", type=int, default=20)
    parser.add_argument("--workers", type=int, default=2, help="uvicorn worker processes")
    parser.add_argument("--database-url", default="", help="engine database (default SQLite)")
    parser.add_argument("--skip-retrain", action="store_true")
    parser.add_argument("--per-class", type=int, default=40, help="base images per class")
    parser.add_argument("--reviewed", type=int, default=20, help="reviewed synced cases")
    parser.add_argument("--no-ddp", dest="ddp", action="store_false")
    args = parser.parse_args()
    print(json.dumps({"cpus": os.cpu_count(), "workers": args.workers,
                      "database": args.database_url.split("@")[-1] or "sqlite"}))
    with tempfile.TemporaryDirectory(prefix="skinstation-bench-") as folder:
        work = Path(folder)
        bench_ingest(args, work)
        if not args.skip_retrain:
            bench_retraining(args, work)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
