"""Encryption at rest: images and pseudonyms, names and notes never sit on disk in plaintext.

Real parts: SQLite files and PostgreSQL schemas, a real HAM10000 image, the engine served over
HTTPS with its data keys in SkinStation's encrypted file keyring, the station syncing to it.
"""

from __future__ import annotations

import base64
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import keyring
import pytest
from sqlalchemy import select, text
from sqlalchemy.exc import DatabaseError

from skinstation.cli import main
from skinstation.core.crypto import BLOB_MAGIC, DecryptionError
from skinstation.core.keystore import SECRETS_SERVICE
from skinstation.engine.ingest.models import Capture as EngineCapture
from skinstation.settings import Settings
from skinstation.storage import (
    AuditEvent,
    Capture,
    Database,
    DuplicateError,
    ImageIntegrityError,
    Patient,
    StationStore,
)
from skinstation.storage.audit import verify_audit_log
from skinstation.sync.credentials import CredentialStore
from skinstation.sync.runner import SyncRunner, enroll_station
from tests.conftest import MemoryKeyring
from tests.test_engine_helpers import (
    ADMIN_PASSWORD,
    DERM_PASSWORD,
    T0,
    EngineUnderTest,
    file_keyring,
    make_tls,
    start_engine,
    station_settings,
)
from tests.test_storage_helpers import BACKENDS, add_operator, open_backend

PSEUDONYM = "PX-ENC-0042"
NAME = "Kim Min-jun 김민준"
NOTE = "itchy since March; grew 2 mm"
JPEG_MAGIC, PNG_MAGIC = b"\xff\xd8\xff", b"\x89PNG"


@dataclass
class Saved:
    database: Database
    store: StationStore
    operator: int
    capture: Capture
    image: bytes


def _save(database: Database, image: bytes, pseudonym: str = PSEUDONYM,
          operator: int | None = None) -> Saved:
    operator = operator or add_operator(database, "nurse", "staff")
    store = StationStore(database, store_patient_names=True)
    patient = store.create_patient(pseudonym, actor_id=operator, name=NAME)
    visit = store.open_visit(patient.id, operator_id=operator)
    capture = store.save_capture(visit.id, image, band="white", body_site="back",
                                 device_id="dermatoscope-1", operator_id=operator,
                                 access_time=T0, capture_time=T0)
    store.add_operator_label(capture.id, "bkl", author_id=operator, note=NOTE)
    return Saved(database, store, operator, capture, image)


def _raw(database: Database) -> dict[str, list[str | None]]:
    with database.engine.connect() as connection:
        return {
            "pseudonym": list(connection.scalars(text("SELECT pseudonym FROM patients "
                                                      "ORDER BY id"))),
            "name": list(connection.scalars(text("SELECT name FROM patients ORDER BY id"))),
            "note": list(connection.scalars(text("SELECT note FROM labels ORDER BY id"))),
        }


def _file(saved: Saved) -> bytes:
    return saved.database.images.path_for(saved.capture.image_ref).read_bytes()


@pytest.fixture()
def station(settings: Settings, real_image_path: Path, request: pytest.FixtureRequest
            ) -> Iterator[Saved]:
    with open_backend(settings.replace(store_patient_names=True), request.param) as database:
        yield _save(database, real_image_path.read_bytes())


@pytest.mark.parametrize("station", BACKENDS, indirect=True)
def test_a_capture_is_encrypted_on_disk_and_reads_back_exactly(station: Saved) -> None:
    stored = _file(station)
    assert stored.startswith(BLOB_MAGIC + b"\x02v1")
    assert not stored.startswith((JPEG_MAGIC, PNG_MAGIC))
    assert station.image[:4096] not in stored and station.image[-4096:] not in stored
    assert len(stored) == len(station.image) + len(BLOB_MAGIC) + 1 + 2 + 12 + 16
    raw = _raw(station.database)
    assert [value[:9] for value in raw["pseudonym"] + raw["name"] + raw["note"]] == [
        "enc:v1:d:", "enc:v1:g:", "enc:v1:g:"]
    assert all(PSEUDONYM not in v and "Kim" not in v and "itchy" not in v
               for v in raw["pseudonym"] + raw["name"] + raw["note"] if v)

    store, operator = station.store, station.operator
    found = store.find_patient(PSEUDONYM, actor_id=operator)
    assert found is not None and (found.pseudonym, found.name) == (PSEUDONYM, NAME)
    assert store.find_patient("PX-ENC-0043", actor_id=operator) is None
    assert store.read_image(station.capture.id, actor_id=operator) == station.image
    original = store.labels(station.capture.id, actor_id=operator).original
    assert original is not None and original.note == NOTE
    with pytest.raises(DuplicateError, match="patient 'PX-ENC-0042' already exists"):
        store.create_patient(PSEUDONYM, actor_id=operator)
    with pytest.raises(DatabaseError), station.database.transaction() as session:  # unique
        session.add(Patient(pseudonym=PSEUDONYM, created_by_id=operator,
                            created_at=station.capture.saved_at))


def test_the_sqlite_files_hold_no_pseudonym_name_or_note(settings: Settings,
                                                         real_image_path: Path) -> None:
    with open_backend(settings.replace(store_patient_names=True), "sqlite") as database:
        _save(database, real_image_path.read_bytes())
        files = sorted(settings.home.glob("station.db*"))
        assert [f.name for f in files] == ["station.db", "station.db-shm", "station.db-wal"]
        everything = b"".join(f.read_bytes() for f in files)
    assert everything.count(b"nurse") > 0  # the files are read: the operator is plaintext
    for secret in (PSEUDONYM, NAME, "Kim Min-jun", "김민준", NOTE, "itchy"):
        assert secret.encode() not in everything, secret
    images = [p for p in (settings.home / "images").rglob("*") if p.is_file()]
    assert len(images) == 1 and not images[0].read_bytes().startswith(JPEG_MAGIC)
    assert not [p for p in settings.home.rglob("*") if p.is_file()
                and p.read_bytes().startswith(JPEG_MAGIC)]  # no plaintext copy anywhere


@pytest.mark.parametrize("backend", BACKENDS)
def test_rotation_encrypts_legacy_plaintext_and_re_encrypts_under_v2(
    settings: Settings, real_image_path: Path, ham_dir: Path, backend: str,
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
) -> None:
    second_image = (ham_dir / "images" / "ISIC_0024306.jpg").read_bytes()
    plain_settings = settings.replace(store_patient_names=True, encrypt_at_rest=False)
    with open_backend(plain_settings, backend) as plain:
        legacy = _save(plain, real_image_path.read_bytes(), "PX-LEGACY-1")
        assert _file(legacy).startswith(JPEG_MAGIC)  # encryption off: written as it came
        assert _raw(plain) == {"pseudonym": ["PX-LEGACY-1"], "name": [NAME], "note": [NOTE]}
        url = plain.settings.database_url
        on = plain.settings.replace(encrypt_at_rest=True, database_url=url)
        database = _reopen(on)
        try:
            fresh = _save(database, second_image, "PX-NEW-2", operator=legacy.operator)
            found = fresh.store.find_patient("PX-LEGACY-1", actor_id=fresh.operator)
            assert found is not None and found.name == NAME  # plaintext rows still found
            assert [v[:7] for v in _raw(database)["pseudonym"]] == ["PX-LEGA", "enc:v1:"]

            monkeypatch.setenv("SKINSTATION_HOME", str(settings.home))
            monkeypatch.setenv("SKINSTATION_DATABASE_URL", url)
            assert main(["keys", "rotate"]) == 0
            printed = capsys.readouterr().out
            assert printed.splitlines() == [
                "data key v2 is current: re-encrypted 2 image file(s) and 6 value(s) "
                "(erasures.pseudonym 0, patients.pseudonym 2, patients.name 2, lesions.label 0, "
                "lesions.note 0, labels.note 2, review_details.other_text 0)",
                "older key version(s) v1 stay in the keyring (skinstation-secrets/station-data"
                "-<version>): backups made before now need them; remove them only once those "
                "backups have expired"]

            raw = _raw(database)
            assert [v[:9] for v in raw["pseudonym"] + raw["name"] + raw["note"] if v] == [
                "enc:v2:d:"] * 2 + ["enc:v2:g:"] * 4
            for saved in (legacy, fresh):
                assert _file(saved).startswith(BLOB_MAGIC + b"\x02v2")
                assert fresh.store.read_image(saved.capture.id,
                                              actor_id=fresh.operator) == saved.image
            for pseudonym in ("PX-LEGACY-1", "PX-NEW-2"):
                patient = fresh.store.find_patient(pseudonym, actor_id=fresh.operator)
                assert patient is not None and patient.name == NAME
            notes = [fresh.store.labels(s.capture.id, actor_id=fresh.operator).original
                     for s in (legacy, fresh)]
            assert [n.note for n in notes if n is not None] == [NOTE, NOTE]
            with database.transaction() as session:
                rotated = session.scalars(select(AuditEvent).where(
                    AuditEvent.action == "keys.rotated")).all()
                assert [r.detail for r in rotated] == [{
                    "key": "v2", "images": 2, "older_keys": ["v1"],
                    "values": {"erasures.pseudonym": 0, "patients.pseudonym": 2,
                               "patients.name": 2, "labels.note": 2,
                               "review_details.other_text": 0, "lesions.label": 0,
                               "lesions.note": 0}}]
                assert verify_audit_log(session).intact
            with pytest.raises(DatabaseError, match="append-only"), \
                    database.engine.begin() as connection:  # the trigger is back
                connection.execute(text("UPDATE labels SET note = 'x'"))
        finally:
            database.dispose()


def _reopen(settings: Settings) -> Database:
    from skinstation.storage import init_database

    return init_database(settings)


def test_a_missing_or_wrong_key_is_a_clear_error_not_garbage(
    settings: Settings, real_image_path: Path, memory_keyring: MemoryKeyring
) -> None:
    with open_backend(settings.replace(store_patient_names=True), "sqlite") as database:
        saved = _save(database, real_image_path.read_bytes())
        keyring.set_keyring(MemoryKeyring())  # this machine lost its keyring
        with pytest.raises(DecryptionError, match=r"^data key station-data v1 is not in the "
                           r"keyring$"), database.transaction() as session:
            session.scalars(select(Patient.name)).all()
        with pytest.raises(DecryptionError, match=r"^data key station-data v1 is not in the "
                           r"keyring$"):
            saved.store.read_image(saved.capture.id, actor_id=saved.operator)

        other = MemoryKeyring()  # another v1 than the one the data was written with
        other.entries = {**memory_keyring.entries, (SECRETS_SERVICE, "station-data-v1"):
                         base64.b64encode(b"k" * 32).decode()}
        keyring.set_keyring(other)
        with pytest.raises(DecryptionError, match=r"^cannot decrypt a value of patients\.name: "
                           r"wrong key or changed data \(InvalidTag\)$"), \
                database.transaction() as session:
            session.scalars(select(Patient.name)).all()
        with pytest.raises(ImageIntegrityError, match=(
                rf"^image file {saved.capture.image_ref} fails its integrity check: cannot "
                rf"decrypt {saved.capture.image_ref}: wrong key or changed data")):
            saved.store.read_image(saved.capture.id, actor_id=saved.operator)

        keyring.set_keyring(memory_keyring)  # the right keyring again: everything reads
        assert saved.store.read_image(saved.capture.id, actor_id=saved.operator) == saved.image


# -- the engine ------------------------------------------------------------------------------

@pytest.fixture()
def engine(tmp_path: Path, data_dir: Path) -> Iterator[EngineUnderTest]:
    folder = tmp_path / "engine"
    running = start_engine(folder, data_dir, make_tls(folder / "tls"),
                           options={"accept_patient_names": True})
    yield running
    running.server.stop()
    running.db.dispose()


def _engine_raw(engine: EngineUnderTest) -> tuple[list[str], list[str], list[str]]:
    with engine.db.engine.connect() as connection:
        patients = connection.execute(text("SELECT pseudonym, name FROM patients")).all()
        notes = list(connection.scalars(text("SELECT original_label_note FROM captures")))
    return [p for p, _ in patients], [n for _, n in patients], notes


def test_the_engine_stores_a_synced_capture_encrypted_and_rotation_re_encrypts_it(
    engine: EngineUnderTest, tmp_path: Path, real_image_path: Path,
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
) -> None:
    settings = station_settings(tmp_path, engine.url, engine.tls, name="st-enc",
                                send_patient_names=True).replace(store_patient_names=True)
    credentials = CredentialStore(settings.station_id, file_keyring(tmp_path / "cred.enc"))
    admin = engine.login("admin", ADMIN_PASSWORD)
    enroll_station(settings, engine.enrollment_code(admin, "st-enc"), credentials)
    saved = _save(_reopen(settings), real_image_path.read_bytes())
    status = SyncRunner(settings, saved.database, credentials=credentials).sync_once()
    assert (status.state, status.confirmed) == ("idle", 1)

    with engine.db.transaction() as session:
        capture = session.scalars(select(EngineCapture)).one()
    stored = engine.db.images.path_for(capture.image_ref).read_bytes()
    assert stored.startswith(BLOB_MAGIC + b"\x02v1") and saved.image[:4096] not in stored
    pseudonyms, names, notes = _engine_raw(engine)
    assert [v[:9] for v in pseudonyms + names + notes] == ["enc:v1:d:", "enc:v1:g:",
                                                           "enc:v1:g:"]
    database_file = (engine.settings.engine.home or tmp_path) / "engine.db"
    everything = b"".join(p.read_bytes() for p in database_file.parent.glob("engine.db*"))
    for secret in (PSEUDONYM, "Kim Min-jun", NOTE):
        assert secret.encode() not in everything, secret
    derm = engine.login("drlee", DERM_PASSWORD)
    picture = engine.get(f"/review/captures/{capture.id}/image", derm)
    assert (picture.status_code, picture.content) == (200, saved.image)
    queue = engine.get("/review/queue", derm).json()
    assert [(item["capture_id"], item["pseudonym"]) for item in queue] == [
        (capture.id, PSEUDONYM)]

    monkeypatch.setenv("SKINSTATION_CONFIG", str(engine.config))
    assert main(["engine", "keys", "rotate"]) == 0
    assert capsys.readouterr().out.splitlines()[0] == (
        "data key v2 is current: re-encrypted 1 image file(s) and 3 value(s) (patients.pseudonym "
        "1, patients.name 1, captures.end_user_ref 0, captures.original_label_note 1, "
        "reviews.note 0)")
    stored = engine.db.images.path_for(capture.image_ref).read_bytes()
    assert stored.startswith(BLOB_MAGIC + b"\x02v2")
    pseudonyms, names, notes = _engine_raw(engine)
    assert [v[:9] for v in pseudonyms + names + notes] == ["enc:v2:d:", "enc:v2:g:",
                                                           "enc:v2:g:"]
    picture = engine.get(f"/review/captures/{capture.id}/image", derm)  # the server reads v2
    assert (picture.status_code, picture.content) == (200, saved.image)
    assert [item["pseudonym"] for item in engine.get("/review/queue", derm).json()] == [
        PSEUDONYM]
    saved.database.dispose()
