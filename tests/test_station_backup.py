"""Station backup and restore: the round trip, a damaged archive, and sync after a restore.

The sync case is the failure the issue reported: a station restored from a backup reused the
visit ids of visits the engine had received after the backup, and its new visits were
refused ("session belongs to another patient"). Run against a real engine over HTTPS.
"""

from __future__ import annotations

import json
import stat
import tarfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import func, select

from skinstation.cli import main
from skinstation.engine.ingest.models import Capture as EngineCapture
from skinstation.engine.ingest.models import ExamSession
from skinstation.settings import Settings
from skinstation.storage import Capture, init_database
from skinstation.storage.audit import verify_audit_log
from skinstation.storage.backup import BackupError, create_backup, restore_backup
from skinstation.storage.models import AuditEvent, Visit
from skinstation.sync.credentials import CredentialStore
from skinstation.sync.runner import SyncRunner, enroll_station
from tests.test_engine_helpers import (
    ADMIN_PASSWORD,
    EngineUnderTest,
    Station,
    add_capture,
    file_keyring,
    ham_images,
    make_station,
    make_tls,
    start_engine,
    station_settings,
)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def _count(station: Station, model: type) -> int:
    with station.database.transaction() as session:
        return int(session.scalar(select(func.count()).select_from(model)) or 0)


def _reopen(station: Station) -> Station:
    from skinstation.storage import StationStore

    database = init_database(station.settings)
    return Station(station.settings, database, StationStore(database), station.operator_id,
                   station.visit_id)


def test_backup_and_restore_round_trip(settings: Settings, ham_dir: Path) -> None:
    station = make_station(settings)
    images = ham_images(ham_dir, 5, skip=2000)
    for index, image in enumerate(images[:3]):
        add_capture(station, image, minutes=index)
    archive = settings.home.parent / "backups" / "station-1.tar"
    report = create_backup(settings, archive)
    assert (report.files, report.images) == (4, 3)  # the database and three images
    assert _mode(archive) == 0o600
    with tarfile.open(archive) as tar:
        files = sorted(m.name for m in tar.getmembers() if m.isfile())
        manifest = json.loads(tar.extractfile("manifest.json").read())  # type: ignore[union-attr]
        assert {m.mode for m in tar.getmembers()} == {0o600}
    assert sorted(manifest["files"]) == [name for name in files if name != "manifest.json"]
    assert "station.db" in files and sum(n.startswith("images/") for n in files) == 3
    with pytest.raises(BackupError, match="exists; choose a new file name"):
        create_backup(settings, archive)

    for index, image in enumerate(images[3:]):  # work done after the backup
        add_capture(station, image, minutes=10 + index)
    assert _count(station, Capture) == 5
    station.database.dispose()

    restored = restore_backup(settings, archive)
    assert (restored.files, restored.images) == (4, 3)
    assert restored.set_aside is not None and (restored.set_aside / "station.db").is_file()
    again = _reopen(station)
    try:
        assert _count(again, Capture) == 3
        with again.database.transaction() as session:
            for capture in session.scalars(select(Capture)):
                assert again.database.images.path_for(capture.image_ref).is_file()
            assert verify_audit_log(session).intact
        assert _mode(settings.home / "station.db") == 0o600
        assert _mode(settings.images_dir) == 0o700
        assert all(_mode(p) == 0o600 for p in settings.images_dir.rglob("*") if p.is_file())
        # the work after the backup was set aside, not deleted
        set_aside = init_database(settings.replace(
            database_url=f"sqlite:///{restored.set_aside / 'station.db'}"), run_recovery=False)
        with set_aside.transaction() as session:
            assert session.scalar(select(func.count()).select_from(Capture)) == 5
        set_aside.dispose()
    finally:
        again.database.dispose()


def test_a_damaged_archive_changes_nothing(settings: Settings, ham_dir: Path) -> None:
    station = make_station(settings)
    for index, image in enumerate(ham_images(ham_dir, 2, skip=2100)):
        add_capture(station, image, minutes=index)
    archive = settings.home.parent / "station.tar"
    create_backup(settings, archive)
    add_capture(station, ham_images(ham_dir, 1, skip=2200)[0], minutes=9)
    station.database.dispose()
    data = bytearray(archive.read_bytes())
    with tarfile.open(archive) as tar:
        member = next(m for m in tar.getmembers() if m.name.startswith("images/") and m.isfile())
    data[member.offset_data + 100] ^= 0xFF  # one flipped byte inside an image
    damaged = archive.with_name("damaged.tar")
    damaged.write_bytes(bytes(data))
    with pytest.raises(BackupError, match=rf"damaged: {member.name} does not match its checksum"):
        restore_backup(settings, damaged)
    assert sorted(p.name for p in settings.home.iterdir() if p.name.startswith("before-")) == []
    again = _reopen(station)
    try:
        assert _count(again, Capture) == 3
    finally:
        again.database.dispose()
    foreign = archive.with_name("foreign.tar")
    with tarfile.open(foreign, "w") as tar:
        tar.add(archive, arcname="something-else")
    with pytest.raises(BackupError, match="has no manifest"):
        restore_backup(settings, foreign)


def test_backup_and_restore_commands_are_audited(settings: Settings, ham_dir: Path,
                                                 monkeypatch: pytest.MonkeyPatch,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("SKINSTATION_HOME", str(settings.home))
    station = make_station(Settings.load())
    add_capture(station, ham_images(ham_dir, 1, skip=2300)[0])
    station.database.dispose()
    archive = settings.home.parent / "cli.tar"
    assert main(["backup", "--out", str(archive)]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"wrote {archive}: 2 files (1 images, ")
    assert main(["restore", str(archive)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == f"restored 2 files (1 images) from {archive}"
    assert out[1].startswith(
        f"the station's previous data was moved to {settings.home}/before-restore-")
    again = _reopen(station)
    try:
        with again.database.transaction() as session:
            actions = list(session.scalars(select(AuditEvent.action).order_by(AuditEvent.id)))
        # the backup row was written after the snapshot: the restored log has the restore row
        assert actions[-1] == "backup.restored" and "backup.created" not in actions
    finally:
        again.database.dispose()
    assert main(["restore", str(archive.with_name("missing.tar"))]) == 1
    assert "error: cannot read" in capsys.readouterr().err


@pytest.fixture(scope="module")
def engine(tmp_path_factory: pytest.TempPathFactory, data_dir: Path) -> Iterator[EngineUnderTest]:
    folder = tmp_path_factory.mktemp("backup-engine")
    running = start_engine(folder, data_dir, make_tls(folder / "tls"))
    yield running
    running.server.stop()
    running.db.dispose()


def _new_visit(station: Station, pseudonym: str) -> None:
    patient = station.store.create_patient(pseudonym, actor_id=station.operator_id)
    station.visit_id = station.store.open_visit(patient.id, operator_id=station.operator_id).id


def test_a_restored_station_syncs_new_visits(engine: EngineUnderTest, tmp_path: Path,
                                             ham_dir: Path) -> None:
    settings = station_settings(tmp_path, engine.url, engine.tls, name="st-restore")
    credentials = CredentialStore(settings.station_id,
                                  file_keyring(tmp_path / "xdg" / "keyring_pass.cfg"))
    enroll_station(settings, engine.enrollment_code(engine.login("admin", ADMIN_PASSWORD),
                                                    "st-restore"), credentials)
    images = iter(ham_images(ham_dir, 6, skip=2400))
    station = make_station(settings, "P-0001")
    add_capture(station, next(images))
    add_capture(station, next(images), minutes=1)
    assert SyncRunner(settings, station.database, credentials=credentials).sync_once(
    ).confirmed == 2
    archive = tmp_path / "st-restore.tar"
    create_backup(settings, archive)

    _new_visit(station, "P-0002")  # after the backup: the engine gets it, the backup does not
    add_capture(station, next(images), minutes=2)
    with station.database.transaction() as session:
        lost_ref = session.get(Visit, station.visit_id).uid  # type: ignore[union-attr]
    assert SyncRunner(settings, station.database, credentials=credentials).sync_once(
    ).confirmed == 3  # the outbox's confirmed captures, all told
    station.database.dispose()

    restore_backup(settings, archive)
    station = _reopen(station)
    _new_visit(station, "P-0003")  # the restored station's next visit id is P-0002's old one
    add_capture(station, next(images), minutes=3)
    status = SyncRunner(settings, station.database, credentials=credentials).sync_once()
    try:
        assert (status.state, status.last_error, status.queue_length, status.confirmed) == (
            "idle", None, 0, 3)
        with station.database.transaction() as session:
            refs = list(session.scalars(select(Visit.uid).order_by(Visit.id)))
        assert len(refs) == len(set(refs)) == 2 and all(len(ref or "") == 36 for ref in refs)
        with engine.db.transaction() as session:
            rows = session.execute(
                select(ExamSession.ref, func.count(EngineCapture.id))
                .join(EngineCapture, EngineCapture.session_id == ExamSession.id)
                .where(ExamSession.ref.in_([*refs, lost_ref]))
                .group_by(ExamSession.ref)).all()
        # P-0001's visit (2 captures), the visit set aside by the restore, P-0003's new visit
        assert dict(rows) == {refs[0]: 2, lost_ref: 1, refs[1]: 1}
    finally:
        station.database.dispose()


def test_visits_made_before_migration_0004_keep_their_ref(settings: Settings) -> None:
    from alembic import command
    from sqlalchemy import text

    from skinstation.storage import create_station_engine
    from skinstation.storage.database import alembic_config


    settings.home.mkdir(parents=True, exist_ok=True)
    engine = create_station_engine(settings.database_url)
    command.upgrade(alembic_config(engine), "0003")
    with engine.begin() as connection:
        connection.execute(text(
            "INSERT INTO operators (username, display_name, role, password_hash, disabled, "
            "failed_login_count, password_changed_at, created_at) VALUES "
            "('ann', 'Ann', 'staff', 'h', false, 0, '2025-01-01', '2025-01-01')"))
        connection.execute(text("INSERT INTO patients (pseudonym, created_by_id, created_at) "
                                "VALUES ('P-1', 1, '2025-01-01')"))
        for _ in range(2):
            connection.execute(text("INSERT INTO visits (patient_id, operator_id, station_id, "
                                    "opened_at) VALUES (1, 1, 'st', '2025-01-01')"))
    engine.dispose()
    database = init_database(settings)
    try:
        from skinstation.storage import StationStore

        new = StationStore(database).open_visit(1, operator_id=1)
        with database.transaction() as session:
            uids = list(session.scalars(select(Visit.uid).order_by(Visit.id)))
        assert uids[:2] == ["1", "2"]  # the refs the engine already knows them by
        assert uids[2] == new.uid and len(uids[2] or "") == 36
    finally:
        database.dispose()

