"""Lesion identities travel to the engine, whose review shows the lesion's history (issue 20).

A real engine over HTTPS (SQLite and PostgreSQL) and a real station syncing with its
:class:`~skinstation.sync.runner.SyncRunner`. A capture of no lesion still uploads exactly the
release-1 document (no ``lesion`` key).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from sqlalchemy import select

from skinstation.engine.ingest.models import Capture as EngineCapture
from skinstation.settings import Settings
from skinstation.storage import SyncRecords
from skinstation.storage.lesions import LesionStore
from skinstation.sync.credentials import CredentialStore
from skinstation.sync.runner import SyncRunner, enroll_station
from tests.test_engine_helpers import (
    ADMIN_PASSWORD,
    DERM_PASSWORD,
    EngineUnderTest,
    add_capture,
    file_keyring,
    ham_images,
    make_station,
    running_engine,
    station_settings,
)
from tests.test_protocol import release_1_upload_document
from tests.test_storage_helpers import BACKENDS


@pytest.fixture(scope="module", params=BACKENDS)
def engine(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory,
           data_dir: Path) -> Iterator[EngineUnderTest]:
    folder = tmp_path_factory.mktemp(f"lesion-engine-{request.param}")
    with running_engine(folder, data_dir, request.param) as running:
        yield running


def _review_page(engine: EngineUnderTest) -> str:
    trust = str(engine.tls.ca_cert)
    with requests.Session() as browser:
        login = browser.post(f"{engine.url}/review/login", timeout=60, allow_redirects=False,
                             verify=trust, data={"username": "drlee", "password": DERM_PASSWORD})
        assert login.status_code == 303, login.text
        page = browser.get(f"{engine.url}/review", timeout=60, verify=trust)
        assert page.status_code == 200
        return page.text


def test_a_capture_without_a_lesion_uploads_the_release_1_document_byte_for_byte(
        settings: Settings, ham_dir: Path) -> None:
    station = make_station(settings)
    plain, shown = (add_capture(station, image, minutes=n)
                    for n, image in enumerate(ham_images(ham_dir, 2, skip=4700)))
    lesions = LesionStore(station.database)
    patient_id = station.store.get_visit(station.visit_id).patient_id
    lesion = lesions.create_lesion(patient_id, body_site="back", view="back", side="left",
                                   x=0.25, y=0.5, label="private label",
                                   actor_id=station.operator_id)
    lesions.assign_capture(shown.id, lesion.id, actor_id=station.operator_id)
    records = SyncRecords(station.database)
    upload = records.upload_of(plain.id)
    assert json.dumps(upload.metadata) == json.dumps(
        release_1_upload_document(station.database, plain.id))
    assert "lesion" not in upload.metadata
    with_lesion = records.upload_of(shown.id).metadata
    assert list(with_lesion)[-1] == "lesion"
    assert with_lesion.pop("lesion") == {"uid": lesion.uid, "body_site": "back", "view": "back",
                                         "side": "left", "x": 0.25, "y": 0.5}
    assert json.dumps(with_lesion) == json.dumps(
        release_1_upload_document(station.database, shown.id))


def test_lesion_uids_sync_and_the_engine_review_shows_the_lesion_history(
        engine: EngineUnderTest, tmp_path: Path, ham_dir: Path) -> None:
    settings = station_settings(tmp_path, engine.url, engine.tls, name="Lesion Clinic")
    keyring = file_keyring(tmp_path / "xdg" / "python_keyring" / "keyring_pass.cfg")
    credentials = CredentialStore(settings.station_id, keyring)
    admin = engine.login("admin", ADMIN_PASSWORD)
    enroll_station(settings, engine.enrollment_code(admin, "Lesion Clinic"), credentials)
    station = make_station(settings)
    lesions = LesionStore(station.database)
    patient_id = station.store.get_visit(station.visit_id).patient_id
    mole = lesions.create_lesion(patient_id, body_site="back", view="back", side="left", x=0.3,
                                 y=0.2, actor_id=station.operator_id)
    images = ham_images(ham_dir, 3, skip=4800)
    later = add_capture(station, images[0], minutes=30, decision="skin_cancer", referral=True)
    first = add_capture(station, images[1], minutes=0, label="nv")
    loose = add_capture(station, images[2], minutes=10)
    for capture in (later, first):
        lesions.assign_capture(capture.id, mole.id, actor_id=station.operator_id)
    status = SyncRunner(settings, station.database, credentials=credentials).sync_once()
    assert (status.confirmed, status.queue_length) == (3, 0), status.last_error

    with engine.db.transaction() as session:
        stored = {c.uid: (c.id, c.lesion_uid, c.lesion_body_site, c.lesion_view, c.lesion_side,
                          c.lesion_x, c.lesion_y)
                  for c in session.scalars(select(EngineCapture).where(
                      EngineCapture.uid.in_([later.uid, first.uid, loose.uid])))}
    assert stored[later.uid][1:] == stored[first.uid][1:] == (
        mole.uid, "back", "back", "left", 0.3, 0.2)
    assert stored[loose.uid][1:] == (None,) * 6
    later_id, first_id, loose_id = (stored[c.uid][0] for c in (later, first, loose))

    derm = engine.login("drlee", DERM_PASSWORD)
    verdict = engine.post(f"/review/captures/{first_id}", derm, json={"action": "confirm"})
    assert verdict.status_code == 201, verdict.text
    detail = engine.get(f"/review/captures/{later_id}", derm).json()
    lesion = detail["lesion"]
    assert (lesion["uid"], lesion["body_site"], lesion["view"], lesion["side"], lesion["x"],
            lesion["y"]) == (mole.uid, "back", "back", "left", 0.3, 0.2)
    assert [(c["capture_id"], c["decision"], c["referral"], c["final_label"],
             c["review_status"], c["current"]) for c in lesion["captures"]] == [
        (first_id, "benign", False, "nv", "confirmed", False),
        (later_id, "skin_cancer", True, "nv", "unreviewed", True)]
    assert engine.get(f"/review/captures/{loose_id}", derm).json()["lesion"] is None

    queue = {item["capture_id"]: item for item in engine.get("/review/queue", derm).json()}
    assert [c["capture_id"] for c in queue[later_id]["lesion"]["captures"]] == [
        first_id, later_id]
    assert queue[loose_id]["lesion"] is None and first_id not in queue
    page = _review_page(engine)
    assert page.count("Lesion history (back, back, left), 2 capture(s)") == 1
    assert re.search(r"<li>\d{4}-\d\d-\d\d benign → nv \(confirmed\)</li>"
                     r"<li class=current>\d{4}-\d\d-\d\d skin_cancer \(referral\) → nv "
                     r"\(unreviewed\) — this case</li>", page)
