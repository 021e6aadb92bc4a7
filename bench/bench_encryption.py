"""Cost per capture of encryption at rest: saving and reading real images, on vs off.

Usage::

    .venv/bin/python bench/bench_encryption.py [--count 200] [--data-dir ../shared/data]

Two station stores side by side in temporary homes (SQLite, fsync on, as on a station), one
with ``encrypt_at_rest`` on and one off, save the same real HAM10000 JPEGs alternately (so
disk and CPU conditions are shared) and read each back through the store (decrypt + sha256
check). Prints the median milliseconds per capture of each, the difference, and the cipher's
own share (AES-256-GCM of the image bytes). The data keys live in an encrypted file keyring
in the temporary folder; no real keyring is touched.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent


def _open(home: Path, encrypt: bool) -> tuple[object, int, int]:
    from skinstation.settings import Settings
    from skinstation.storage import Operator, StationStore, init_database

    database = init_database(Settings.load(env={}, home=home, encrypt_at_rest=encrypt))
    now = datetime.now(UTC)
    with database.transaction() as session:
        operator = Operator(username="bench", display_name="Bench", role="staff",
                            password_hash="-", disabled=False, failed_login_count=0,
                            password_changed_at=now, created_at=now)
        session.add(operator)
        session.flush()
        operator_id = operator.id
    store = StationStore(database)
    patient = store.create_patient(f"BENCH-{'ON' if encrypt else 'OFF'}", actor_id=operator_id)
    visit = store.open_visit(patient.id, operator_id=operator_id)
    return store, operator_id, visit.id


def _ms(seconds: list[float]) -> float:
    return statistics.median(seconds) * 1000


def main() -> None:
    """Print the median cost per capture with encryption on and off."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=200, help="captures per store")
    parser.add_argument("--data-dir", type=Path, default=Path(os.environ.get(
        "SKINSTATION_TEST_DATA_DIR", REPO_ROOT.parent / "shared" / "data")))
    args = parser.parse_args()
    jpegs = sorted((args.data_dir / "ham10000" / "images").glob("*.jpg"))[: args.count]
    if len(jpegs) < args.count:
        sys.exit(f"need {args.count} HAM10000 images under {args.data_dir}/ham10000/images")
    images = [path.read_bytes() for path in jpegs]

    with tempfile.TemporaryDirectory(prefix="skinstation-bench-enc-") as folder:
        root = Path(folder)
        os.environ["SKINSTATION_KEYRING_FILE"] = str(root / "keyring.enc")
        os.environ["SKINSTATION_KEYRING_KEY_FILE"] = str(root / "machine.key")
        os.environ.pop("SKINSTATION_KEYRING_PASSPHRASE", None)
        from skinstation.core.crypto import STATION_KEYS, configure_data_keys, data_cipher

        stores = {flag: _open(root / ("on" if flag else "off"), flag) for flag in (False, True)}
        saves: dict[bool, list[float]] = {False: [], True: []}
        reads: dict[bool, list[float]] = {False: [], True: []}
        now = datetime.now(UTC)
        for image in images:
            for flag in (False, True):
                # the process-wide switch: the last store opened set it, so set it per save
                configure_data_keys(STATION_KEYS, enabled=flag, home=root)
                store, operator_id, visit_id = stores[flag]
                started = time.perf_counter()
                capture = store.save_capture(  # type: ignore[attr-defined]
                    visit_id, image, band="white", body_site="back", device_id="bench",
                    operator_id=operator_id, access_time=now, capture_time=now)
                saves[flag].append(time.perf_counter() - started)
                started = time.perf_counter()
                back = store.read_image(capture.id, actor_id=operator_id)  # type: ignore[attr-defined]
                reads[flag].append(time.perf_counter() - started)
                assert back == image
        cipher = data_cipher(STATION_KEYS)
        seal: list[float] = []
        for image in images:
            started = time.perf_counter()
            sealed = cipher.encrypt_blob(image, context="bench")
            assert cipher.decrypt_blob(sealed, context="bench") == image
            seal.append(time.perf_counter() - started)
        big = (b"".join(images) * (3_000_000 // sum(map(len, images)) + 1))[:3_000_000]
        frame: list[float] = []  # a camera-sized capture (the real bytes, repeated)
        for _ in range(5):
            started = time.perf_counter()
            assert cipher.decrypt_blob(cipher.encrypt_blob(big, context="bench"),
                                       context="bench") == big
            frame.append(time.perf_counter() - started)

    size = statistics.mean(len(image) for image in images) / 1024
    print(f"{len(images)} real HAM10000 JPEGs (mean {size:.0f} KiB), SQLite, fsync on; "
          "median ms per capture")
    print(f"{'':28s}{'off':>9s}{'on':>9s}{'cost':>9s}")
    for label, values in (("save (file + row + audit)", saves), ("read back (verify sha)", reads)):
        off, on = _ms(values[False]), _ms(values[True])
        print(f"{label:28s}{off:9.2f}{on:9.2f}{on - off:+9.2f}")
    print(f"{'cipher alone (enc + dec)':28s}{'':9s}{_ms(seal):9.2f}")
    print(f"{'cipher, one 3 MB frame':28s}{'':9s}{_ms(frame):9.2f}")


if __name__ == "__main__":
    main()
