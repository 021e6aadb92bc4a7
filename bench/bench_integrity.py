"""Fault-and-fuzz run: a real engine and a real station under kills, cuts, duplicates and bad input.

Usage::

    .venv/bin/python bench/bench_integrity.py --data-dir ../shared/data [--rounds 12]
        [--per-round 4] [--examples 5] [--postgres URL]

One engine (``skinstation engine serve`` over HTTPS on 127.0.0.1, SQLite, or PostgreSQL with
``--postgres``) and one enrolled station syncing through a TCP relay. Every round the station
saves ``--per-round`` captures of real HAM10000 images and syncs once, under the round's fault,
in turn:

* ``clean``: nothing goes wrong;
* ``engine-kill``: the engine is killed (SIGKILL) before the round and restarted after it;
* ``cut``: the relay cuts the connection mid-upload;
* ``lost-answer``: the engine stores a capture but the station never hears the answer;
* ``duplicates``: the same upload documents are posted again straight to the engine;
* ``bad-fields``: uploads with a NUL in the pseudonym, years 0001 and 9999, an integer of
  2^63, and a 100-megapixel PNG, posted straight to the engine (they must be refused, 4xx).

Then clean rounds drain the queue, and a bounded schemathesis pass (``--examples`` per
operation, three credentials; 0 skips it) fuzzes every route. The run prints what was sent,
stored, refused, lost and duplicated, and every 5xx answer seen by any client in this process
(the station's sync, the direct posts, schemathesis) or logged as a crash by the engine.
Lost, duplicated and 5xx must be 0; the exit status is 1 otherwise.

It reuses the suite's engine harness and TCP relay (``tests/``): the same real processes the
fault tests drive, so the figures describe exactly what the tests check.
"""

from __future__ import annotations

import argparse
import copy
import hashlib
import json
import sys
import tempfile
import threading
import time
import uuid
import zlib
from collections import Counter
from pathlib import Path
from typing import Any

from requests.adapters import HTTPAdapter

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))

ANSWERS: Counter[int] = Counter()
"""Every HTTP status any client in this process received."""

_send = HTTPAdapter.send


def _counting_send(self: HTTPAdapter, request: Any, *args: Any, **kwargs: Any) -> Any:
    response = _send(self, request, *args, **kwargs)
    ANSWERS[response.status_code] += 1
    return response


HTTPAdapter.send = _counting_send  # type: ignore[method-assign]


def _quiet_relay_errors(hook: threading.ExceptHookArgs) -> None:
    """The relay cannot reach a killed engine: expected, not worth a traceback."""
    if not issubclass(hook.exc_type, ConnectionRefusedError):
        threading.__excepthook__(hook)


threading.excepthook = _quiet_relay_errors


def _huge_png(side: int = 10_000) -> bytes:
    """A 1-bit, 100-megapixel PNG of a few kB (all white)."""
    row = b"\x00" + b"\xff" * (side // 8)
    body = zlib.compress(row * side, 9)

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (len(data).to_bytes(4, "big") + kind + data
                + zlib.crc32(kind + data).to_bytes(4, "big"))

    header = side.to_bytes(4, "big") * 2 + bytes([1, 0, 0, 0, 0])
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", body)
            + chunk(b"IEND", b""))


def _bad_variants(document: dict[str, Any]) -> list[tuple[str, dict[str, Any], bool]]:
    """(name, metadata, use the huge image) for every kind of bad field."""
    variants = []

    def variant(name: str, part: str, huge: bool = False, **changes: Any) -> None:
        bad = copy.deepcopy(document)
        bad["capture"]["uid"] = str(uuid.uuid4())
        bad[part].update(changes)
        variants.append((name, bad, huge))

    variant("nul-pseudonym", "patient", pseudonym="PG-0004\x00")
    variant("year-0001", "capture", capture_time="0001-01-01T00:00:00+00:00")
    variant("year-9999", "capture", access_time="9999-12-31T23:59:59+00:00")
    variant("int-2^63", "capture", multispectral_group_id=str(uuid.uuid4()),
            multispectral_index=2**63)
    variant("100-megapixel", "capture", huge=True)
    return variants


def main(argv: list[str] | None = None) -> int:
    """Run the fault-and-fuzz session and print its figures."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data-dir", default=str(REPO_ROOT.parent / "shared" / "data"))
    parser.add_argument("--rounds", type=int, default=12)
    parser.add_argument("--per-round", type=int, default=4)
    parser.add_argument("--examples", type=int, default=5,
                        help="schemathesis examples per operation (0: skip)")
    parser.add_argument("--postgres", default="", help="engine database URL (default SQLite)")
    args = parser.parse_args(argv)

    from sqlalchemy import func, select

    from skinstation.engine.ingest.models import Capture as EngineCapture
    from skinstation.storage import SyncRecords
    from skinstation.storage.models import OutboxEntry
    from skinstation.sync.credentials import CredentialStore
    from skinstation.sync.runner import SyncRunner, enroll_station
    from tests.conftest import MemoryKeyring
    from tests.test_engine_helpers import (
        ADMIN_PASSWORD,
        add_capture,
        ham_images,
        make_station,
        make_tls,
        start_engine,
        station_settings,
    )
    from tests.test_sync_faults import TcpProxy

    data_dir = Path(args.data_dir).resolve()
    started = time.monotonic()
    folder = Path(tempfile.mkdtemp(prefix="bench-integrity-"))
    engine = start_engine(folder, data_dir, make_tls(folder / "tls"),
                          database_url=args.postgres)
    proxy = TcpProxy(engine.server.port)
    settings = station_settings(folder, proxy.url, engine.tls, name="bench-station")
    credentials = CredentialStore(settings.station_id, MemoryKeyring())
    admin = engine.login("admin", ADMIN_PASSWORD)
    enroll_station(settings, engine.enrollment_code(admin, "bench-station"), credentials)
    token = credentials.load().token
    station = make_station(settings, "P-BENCH")
    runner = SyncRunner(settings, station.database, credentials=credentials)
    records = SyncRecords(station.database)
    images = iter(ham_images(data_dir / "ham10000", args.rounds * args.per_round + 8, skip=3000))

    faults = ["clean", "engine-kill", "cut", "lost-answer", "duplicates", "bad-fields"]
    sent_uids: list[str] = []
    refused_direct: Counter[str] = Counter()
    duplicate_answers: Counter[int] = Counter()
    fault_count: Counter[str] = Counter()

    def post(metadata: dict[str, Any], image: bytes, name: str = "capture.jpg") -> int:
        files = {"metadata": (None, json.dumps(metadata), "application/json"),
                 "image": (name, image, "image/png" if name.endswith(".png") else "image/jpeg")}
        return engine.post("/captures", token, files=files).status_code

    def engine_count() -> tuple[int, int]:
        with engine.db.transaction() as session:
            rows = session.scalar(select(func.count()).select_from(EngineCapture)) or 0
            distinct = session.scalar(select(func.count(func.distinct(
                EngineCapture.image_sha256)))) or 0
        return int(rows), int(distinct)

    for number in range(args.rounds):
        fault = faults[number % len(faults)]
        fault_count[fault] += 1
        new = [add_capture(station, next(images), minutes=number * 10 + i)
               for i in range(args.per_round)]
        sent_uids += [capture.uid for capture in new]
        if fault == "engine-kill":
            engine.server.kill()
            runner.sync_once()
            engine.server.start()
            continue
        if fault == "cut":
            proxy.cut_after = 20_000
        elif fault == "lost-answer":
            before = engine_count()[0]
            proxy.drop_answer_when = lambda before=before: engine_count()[0] > before
        runner.sync_once()
        if fault == "duplicates":
            for capture in new:
                upload = records.upload_of(capture.id)
                duplicate_answers[post(upload.metadata, upload.image)] += 1
        elif fault == "bad-fields":
            upload = records.upload_of(new[0].id)
            huge_png = _huge_png()
            for name, metadata, huge in _bad_variants(upload.metadata):
                if huge:  # a consistent upload of a 100-megapixel image
                    metadata["capture"].update(
                        image_sha256=hashlib.sha256(huge_png).hexdigest(),
                        image_size=len(huge_png), image_format="png", width=10_000,
                        height=10_000)
                status = post(metadata, huge_png if huge else upload.image,
                              "huge.png" if huge else "capture.jpg")
                refused_direct[f"{name}:{status}"] += 1
    for _ in range(5):  # drain
        if runner.sync_once().queue_length == 0:
            break

    fuzz_line = "schemathesis: skipped"
    if args.examples > 0:
        from skinstation.engine.models.imports import import_model
        from skinstation.resources import DEFAULT_MODEL_PATH
        from tests.test_schemathesis import schemathesis_pass

        import_model(engine.db, DEFAULT_MODEL_PATH, actor="bench")  # the first: deployed
        figures = schemathesis_pass(engine, engine.login("admin", ADMIN_PASSWORD),
                                    data_dir / "ham10000", max_examples=args.examples)
        fuzz_line = f"schemathesis: {figures.summary()}"

    with station.database.transaction() as session:
        states = Counter(session.scalars(select(OutboxEntry.state)))
    with engine.db.transaction() as session:
        stored_uids = list(session.scalars(select(EngineCapture.uid).where(
            EngineCapture.uid.in_(sent_uids))))
    rows, distinct_images = engine_count()
    refused = states.get("refused", 0)
    lost = len(set(sent_uids) - set(stored_uids)) - refused
    duplicated = (len(stored_uids) - len(set(stored_uids))) + (rows - distinct_images)
    crashes = engine.server.log.read_text(errors="replace").count("Exception in ASGI application")
    server_errors = sum(count for status, count in ANSWERS.items() if status >= 500)
    engine.server.stop()
    engine.db.dispose()
    proxy.close()

    print(f"engine database: {'PostgreSQL' if args.postgres else 'SQLite'}; "
          f"{args.rounds} rounds x {args.per_round} captures; faults "
          f"{dict(fault_count)}; relay faults fired {proxy.faults}")
    bad_sent = sum(refused_direct.values())
    bad_refused = sum(count for key, count in refused_direct.items()
                      if 400 <= int(key.rsplit(":", 1)[1]) < 500)
    print(f"sent {len(sent_uids) + bad_sent} ({len(sent_uids)} captures synced by the station, "
          f"{bad_sent} bad-field uploads)  stored {len(set(stored_uids))}  refused "
          f"{refused + bad_refused} (station outbox {refused}, bad-field uploads {bad_refused})  "
          f"lost {lost}  duplicated {duplicated}")
    print(f"direct duplicate posts answered {dict(duplicate_answers)}; bad-field posts "
          f"answered {dict(sorted(refused_direct.items()))}")
    print(fuzz_line)
    print(f"5xx answers seen: {server_errors} (engine crash tracebacks: {crashes}); all "
          f"answers {dict(sorted(ANSWERS.items()))}")
    print(f"wall time {time.monotonic() - started:.0f} s")
    bad_accepted = bad_sent - bad_refused
    return 0 if lost == duplicated == server_errors == crashes == bad_accepted == 0 else 1


if __name__ == "__main__":
    raise SystemExit(main())
