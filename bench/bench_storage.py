"""Capture-insert rate of the station store: image write + fsync + row + outbox + audit.

Usage::

    .venv/bin/python bench/bench_storage.py [--count 200] [--data-dir ../shared/data]

Measures two kinds of capture on SQLite in a temporary home, and on PostgreSQL too when
``SKINSTATION_TEST_PG_URL`` is set (images still go to local disk, as on a station):

* ``jpeg``: real HAM10000 JPEGs kept byte for byte (each a different file);
* ``array``: a 1280x960 RGB frame from the camera, encoded to lossless PNG.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
from sqlalchemy import create_engine
from sqlalchemy.engine import make_url

from skinstation.settings import Settings
from skinstation.storage import Operator, StationStore, init_database

REPO_ROOT = Path(__file__).resolve().parent.parent


def _frames(height: int = 960, width: int = 1280) -> Callable[[int], np.ndarray]:
    """Skin-like smooth frames with a little sensor noise (realistic PNG sizes)."""
    rng = np.random.default_rng(0)
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    base = np.stack([190 + 20 * np.sin(x / 90), 140 + 15 * np.cos(y / 70), 120 + 0 * x], axis=2)

    def frame(i: int) -> np.ndarray:
        noise = rng.normal(0, 3, (height, width, 3)).astype(np.float32)
        return np.clip(base + noise + (i % 7), 0, 255).astype(np.uint8)

    return frame


@contextmanager
def _postgres_url(url: str) -> Iterator[str]:
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


def _run(
    settings: Settings, images: list[bytes] | Callable[[int], np.ndarray], count: int
) -> float:
    database = init_database(settings)
    now = datetime.now(UTC)
    with database.transaction() as session:
        operator = Operator(
            username="bench",
            display_name="Bench",
            role="staff",
            password_hash="-",
            disabled=False,
            failed_login_count=0,
            password_changed_at=now,
            created_at=now,
        )
        session.add(operator)
        session.flush()
        operator_id = operator.id
    store = StationStore(database)
    patient = store.create_patient("BENCH-1", actor_id=operator_id)
    visit = store.open_visit(patient.id, operator_id=operator_id)
    inputs = [
        images[i % len(images)] if isinstance(images, list) else images(i) for i in range(count)
    ]
    started = time.perf_counter()
    for image in inputs:
        store.save_capture(
            visit.id,
            image,
            band="white",
            body_site="back",
            device_id="bench",
            operator_id=operator_id,
            access_time=now,
            capture_time=now,
        )
    elapsed = time.perf_counter() - started
    database.dispose()
    return count / elapsed


def main() -> None:
    """Print captures/s for each backend and image kind."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=200)
    parser.add_argument(
        "--data-dir",
        type=Path,
        default=Path(
            os.environ.get("SKINSTATION_TEST_DATA_DIR", REPO_ROOT.parent / "shared" / "data")
        ),
    )
    args = parser.parse_args()
    jpegs = sorted((args.data_dir / "ham10000" / "images").glob("*.jpg"))[: args.count]
    if not jpegs:
        sys.exit(f"no HAM10000 images under {args.data_dir}")
    jpeg_bytes = [path.read_bytes() for path in jpegs]
    kinds: dict[str, list[bytes] | Callable[[int], np.ndarray]] = {
        f"jpeg ({len(jpeg_bytes[0]) // 1024} KiB)": jpeg_bytes,
        "array 1280x960 -> PNG": _frames(),
    }
    backends = ["sqlite"] + (["postgresql"] if os.environ.get("SKINSTATION_TEST_PG_URL") else [])
    for backend in backends:
        for kind, images in kinds.items():
            count = args.count if isinstance(images, list) else max(20, args.count // 5)
            with tempfile.TemporaryDirectory() as home:
                settings = Settings.load(env={}, home=Path(home))
                if backend == "postgresql":
                    with _postgres_url(os.environ["SKINSTATION_TEST_PG_URL"]) as url:
                        rate = _run(settings.replace(database_url=url), images, count)
                else:
                    rate = _run(settings, images, count)
            print(f"{backend:10s} {kind:24s} {count:5d} captures  {rate:8.1f} captures/s")


if __name__ == "__main__":
    main()
