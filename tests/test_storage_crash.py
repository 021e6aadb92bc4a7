"""Crash safety: no row ever lacks its image, orphans and temp files are cleaned at start.

The kill test runs this very file as a writer process (see ``_writer_main``) that saves
captures in a loop, SIGKILLs it at random moments, restarts the store and checks every
invariant. Further tests inject failures at the exact dangerous points in-process.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import random
import signal
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import create_engine, func, select, text

from skinstation.core.files import TEMP_PREFIX
from skinstation.settings import Settings
from skinstation.storage import (
    AuditAction,
    AuditEvent,
    Capture,
    Database,
    OutboxEntry,
    Patient,
    StationStore,
    Visit,
    audited_store,
    init_database,
    recover,
)
from tests.test_storage_helpers import add_operator

REPO_ROOT = Path(__file__).resolve().parent.parent
T0 = datetime(2025, 3, 14, 9, 0, tzinfo=UTC)
KILL_ROUNDS = 6


def _writer_main(home: str, visit_id: int, operator_id: int, seed: int) -> None:
    """Save distinct captures forever (until killed), announcing the first one."""
    settings = Settings.load(env={}, home=Path(home))
    database = init_database(settings, run_recovery=False)
    store = StationStore(database)
    rng = np.random.default_rng(seed)
    for count in range(1_000_000):
        pixels = rng.integers(0, 256, (96, 128, 3), dtype=np.uint8)
        store.save_capture(
            visit_id,
            pixels,
            band="white",
            body_site="back",
            device_id="cam-1",
            operator_id=operator_id,
            access_time=T0,
            capture_time=T0 + timedelta(seconds=count),
        )
        if count == 0:
            print("saving", flush=True)


def _setup(settings: Settings) -> tuple[int, int]:
    database = init_database(settings)
    operator_id = add_operator(database, "sam", "staff")
    store = StationStore(database)
    patient = store.create_patient("P-0001", actor_id=operator_id)
    visit = store.open_visit(patient.id, operator_id=operator_id)
    database.dispose()
    return visit.id, operator_id


def _check_invariants(database: Database) -> int:
    """Assert the store is consistent; return the number of captures."""
    store = database.images
    with database.transaction() as session:
        captures = session.execute(
            select(Capture.id, Capture.image_ref, Capture.image_sha256)
        ).all()
        outbox = set(session.scalars(select(OutboxEntry.capture_id)))
        saved = session.scalar(
            select(func.count())
            .select_from(AuditEvent)
            .where(AuditEvent.action == AuditAction.CAPTURE_SAVED.value)
        )
    for _, ref, sha256 in captures:
        assert store.intact(ref, sha256)  # decrypted, hashes to its sha256
    referenced = {ref for _, ref, _ in captures}
    on_disk = [store.ref_of(p) for p in store.files()]
    assert not [name for name in on_disk if Path(name).name.startswith(TEMP_PREFIX)]
    assert set(on_disk) == referenced  # no orphan left, nothing missing
    assert outbox == {capture_id for capture_id, _, _ in captures}
    assert saved == len(captures)
    with database.engine.connect() as connection:
        assert connection.exec_driver_sql("PRAGMA integrity_check").scalar() == "ok"
        assert connection.exec_driver_sql("PRAGMA foreign_key_check").all() == []
    return len(captures)


def test_sigkill_mid_write_never_leaves_a_row_without_its_image(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    # the writer process and this one keep the data keys in one encrypted file keyring
    monkeypatch.setenv("SKINSTATION_KEYRING_FILE", str(settings.home / "test-keyring.enc"))
    monkeypatch.setenv("SKINSTATION_KEYRING_PASSPHRASE", "crash test keyring passphrase")
    visit_id, operator_id = _setup(settings)
    chooser = random.Random(20250314)
    environment = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    counts = [0]
    for round_number in range(KILL_ROUNDS):
        writer = subprocess.Popen(
            [
                sys.executable,
                __file__,
                str(settings.home),
                str(visit_id),
                str(operator_id),
                str(round_number),
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=environment,
            cwd=REPO_ROOT,
        )
        try:
            assert writer.stdout is not None
            first = writer.stdout.readline()
            assert first == b"saving\n", writer.stderr.read() if writer.stderr else first
            with contextlib.suppress(subprocess.TimeoutExpired):
                writer.wait(timeout=chooser.uniform(0.02, 0.4))
            assert writer.returncode is None, "the writer stopped by itself"
        finally:
            writer.send_signal(signal.SIGKILL)
            writer.wait(timeout=30)
            writer.stdout.close()  # type: ignore[union-attr]
            writer.stderr.close()  # type: ignore[union-attr]
        assert writer.returncode == -signal.SIGKILL

        database = init_database(settings, orphan_grace=timedelta(0))  # restart + recover
        try:
            assert database.recovery is not None
            assert database.recovery.missing_images == ()
            counts.append(_check_invariants(database))
        finally:
            database.dispose()
    assert all(b > a for a, b in itertools.pairwise(counts)), counts


def test_failure_after_image_write_leaves_an_orphan_that_recovery_removes(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    visit_id, operator_id = _setup(settings)
    database = init_database(settings)
    store = StationStore(database)

    def crash(*_: object, **__: object) -> None:
        raise RuntimeError("power cut")

    monkeypatch.setattr(audited_store, "record_audit", crash)
    pixels = np.full((10, 10, 3), 77, np.uint8)
    with pytest.raises(RuntimeError, match="power cut"):
        store.save_capture(
            visit_id,
            pixels,
            band="white",
            body_site="arm",
            device_id="cam",
            operator_id=operator_id,
            access_time=T0,
            capture_time=T0,
        )
    orphans = [database.images.ref_of(p) for p in database.images.files()]
    assert len(orphans) == 1
    with database.transaction() as session:
        assert session.scalar(select(func.count()).select_from(Capture)) == 0
        assert session.scalar(select(func.count()).select_from(OutboxEntry)) == 0

    assert init_database(settings).recovery.orphans_removed == ()  # type: ignore[union-attr]
    report = recover(settings, grace=timedelta(0))
    assert report.orphans_removed == tuple(orphans)
    assert list(database.images.files()) == []


def test_image_is_durable_before_its_row_exists(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    visit_id, operator_id = _setup(settings)
    database = init_database(settings)
    observer = create_engine(settings.database_url)
    seen: list[tuple[bool, int]] = []
    real_put = database.images.put

    def observing_put(encoded):  # type: ignore[no-untyped-def]
        ref = real_put(encoded)
        with observer.connect() as connection:
            rows = connection.execute(text("SELECT count(*) FROM captures")).scalar_one()
        seen.append((database.images.path_for(ref).is_file(), rows))
        return ref

    monkeypatch.setattr(database.images, "put", observing_put)
    StationStore(database).save_capture(
        visit_id,
        np.zeros((4, 4), np.uint8),
        band="white",
        body_site="arm",
        device_id="cam",
        operator_id=operator_id,
        access_time=T0,
        capture_time=T0,
    )
    observer.dispose()
    assert seen == [(True, 0)]
    with database.transaction() as session:
        assert session.scalar(select(func.count()).select_from(Capture)) == 1
        assert session.scalar(select(func.count()).select_from(Patient)) == 1
        assert session.scalar(select(func.count()).select_from(Visit)) == 1


def test_recover_reports_but_never_deletes_rows_with_missing_or_altered_images(
    settings: Settings,
) -> None:
    visit_id, operator_id = _setup(settings)
    database = init_database(settings)
    store = StationStore(database)
    saved = [
        store.save_capture(
            visit_id,
            np.full((5, 5), value, np.uint8),
            band="white",
            body_site="arm",
            device_id="cam",
            operator_id=operator_id,
            access_time=T0,
            capture_time=T0,
        )
        for value in (1, 2, 3)
    ]
    database.images.path_for(saved[0].image_ref).unlink()
    database.images.path_for(saved[1].image_ref).write_bytes(b"altered")

    quick = recover(settings, grace=timedelta(0))
    full = recover(settings, grace=timedelta(0), verify=True)

    assert (quick.missing_images, quick.corrupt_images) == ((saved[0].id,), ())
    assert (full.missing_images, full.corrupt_images) == ((saved[0].id,), (saved[1].id,))
    assert full.orphans_removed == () and not full.clean
    with database.transaction() as session:
        assert session.scalar(select(func.count()).select_from(Capture)) == 3


if __name__ == "__main__":
    _writer_main(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]))
