"""Classify-as-a-service benchmark: throughput and latency at 1, 4 and 16 concurrent clients.

Usage::

    .venv/bin/python bench/bench_provider.py [--data-dir ../shared/data] [--model FILE]
        [--workers 2] [--classify-threads 1] [--classify-queue 16] [--clients 1,4,16]
        [--requests 40] [--database-url URL]

A real engine (``skinstation engine serve``, uvicorn, ``--workers`` processes, HTTPS with a
throwaway CA) on 127.0.0.1, SQLite by default. The model deployed is ``--model``, else the
bundled default model, else a small model of the same architecture built on the spot from 42
HAM10000 images (the network and input size, not the training, set the inference cost). A
provider with quotas far above the load gets a key; each client is a thread with its own
keep-alive HTTPS session posting real HAM10000 JPEGs (multipart, no consent, quality check
on, no heatmap) one after another, ``--requests`` each. Printed per level: calls/s, p50 and
p95 latency, and any 503 (queue full). Clients and server share this machine's cores.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import requests

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))

from skinstation.engine.database import open_engine_database  # noqa: E402
from skinstation.engine.models import service as registry  # noqa: E402
from skinstation.engine.models.models import ModelStatus  # noqa: E402
from skinstation.engine.providers import service as providers  # noqa: E402
from skinstation.resources import DEFAULT_MODEL_PATH  # noqa: E402
from skinstation.settings import Settings  # noqa: E402
from tests.conftest import write_manifest  # noqa: E402
from tests.test_engine_helpers import EngineServer, make_tls, write_engine_config  # noqa: E402


def _model(args: argparse.Namespace, work: Path) -> Path:
    if args.model:
        return args.model
    if DEFAULT_MODEL_PATH.is_file():
        return DEFAULT_MODEL_PATH
    from skinstation.training.pipeline import BuildRequest, build_model
    from skinstation.training.trainer import TrainConfig

    print("no default model in resources/models: building a small one (same network)...",
          flush=True)
    manifest = write_manifest(work / "tiny.csv", args.data_dir / "ham10000", per_class=6)
    request = BuildRequest(
        source=f"manifest:{manifest}", split_path=work / "split.csv",
        output=work / "bench.safetensors", cache_dir=work / "cache", version="bench-model",
        config=TrainConfig(views=1, head_epochs=3, finetune_epochs=1, batch_size=16))
    build_model(request, log=lambda message: None)
    return request.output


def _client(url: str, ca: str, key: str, images: list[bytes], latencies: list[float],
            statuses: list[int]) -> None:
    """One provider client: classify its images one after another on a keep-alive session."""
    session = requests.Session()
    session.trust_env = False
    session.verify = ca
    session.headers["Authorization"] = f"Bearer {key}"
    for index, image in enumerate(images):
        started = time.perf_counter()
        answer = session.post(f"{url}/api/v1/classify", timeout=120,
                              files={"image": ("lesion.jpg", image, "image/jpeg")},
                              data={"end_user_id": f"bench-{index}", "device_id": "bench"})
        elapsed = time.perf_counter() - started
        statuses.append(answer.status_code)
        if answer.status_code == 200:
            latencies.append(elapsed)
        elif answer.status_code != 503:
            raise RuntimeError(f"classify answered {answer.status_code}: {answer.text}")
    session.close()


def _level(url: str, ca: str, key: str, images: list[bytes], clients: int,
           per_client: int, label: str = "") -> None:
    latencies: list[float] = []
    statuses: list[int] = []
    batches = [[images[(c * per_client + i) % len(images)] for i in range(per_client)]
               for c in range(clients)]
    threads = [threading.Thread(target=_client, args=(url, ca, key, batch, latencies, statuses))
               for batch in batches]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - started
    latencies.sort()
    ok = len(latencies)
    busy = statuses.count(503)
    p50, p95 = statistics.median(latencies), latencies[int(0.95 * (ok - 1))]
    print(f"{label}{clients:3d} client(s): {ok:4d} classified in {elapsed:6.1f} s = "
          f"{ok / elapsed:6.1f} calls/s; latency p50 {p50 * 1000:6.0f} ms, p95 "
          f"{p95 * 1000:6.0f} ms; 503 busy: {busy}", flush=True)


def main() -> None:
    """Run the benchmark and print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, default=REPO_ROOT.parent / "shared" / "data")
    parser.add_argument("--model", type=Path)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--classify-threads", type=int, default=1)
    parser.add_argument("--classify-queue", type=int, default=16)
    parser.add_argument("--clients", default="1,4,16")
    parser.add_argument("--requests", type=int, default=40, help="calls per client")
    parser.add_argument("--database-url", default="")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="skinstation-bench-provider-") as folder:
        work = Path(folder)
        model = _model(args, work)
        os.environ["SKINSTATION_ENGINE_CLASSIFY_THREADS"] = str(args.classify_threads)
        os.environ["SKINSTATION_ENGINE_CLASSIFY_QUEUE"] = str(args.classify_queue)
        engine = {"home": str(work / "engine")}
        if args.database_url:
            engine["database_url"] = args.database_url
        config = write_engine_config(work / "engine.toml", home=work / "engine",
                                     data_dir=args.data_dir, engine=engine)
        db = open_engine_database(Settings.load(env={}, config_file=config))
        version = registry.register_model(db, model, status=ModelStatus.PROMOTED,
                                          actor="bench").version
        tls = make_tls(work / "tls")
        server = EngineServer(config, tls, workers=args.workers).start()
        try:
            registry.deploy(db, version, action="initial", actor="bench", reason="bench")
            providers.create_provider(db, "Bench", actor="bench", requests_per_minute=1_000_000,
                                      requests_per_day=100_000_000)
            key = providers.create_key(db, "Bench", actor="bench").key
            paths = sorted((args.data_dir / "ham10000" / "images").glob("ISIC_*.jpg"))[:400]
            images = [path.read_bytes() for path in paths]
            print(f"model {version}; engine: {args.workers} uvicorn workers x "
                  f"{args.classify_threads} classify thread(s), queue {args.classify_queue}; "
                  f"{os.cpu_count()} cores; load average {os.getloadavg()[0]:.1f}; "
                  f"{len(images)} real HAM10000 JPEGs (mean "
                  f"{sum(map(len, images)) / len(images) / 1000:.1f} kB)", flush=True)
            _level(server.url, str(tls.ca_cert), key, images, 4, 4,
                   "warm-up (each worker loads the model): ")
            for clients in (int(c) for c in args.clients.split(",")):
                _level(server.url, str(tls.ca_cert), key, images, clients, args.requests)
        finally:
            server.stop()
            db.dispose()


if __name__ == "__main__":
    main()
