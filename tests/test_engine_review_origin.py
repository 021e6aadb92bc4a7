"""A station token cannot make a final label: a review sent by a station is a proposal.

Real engine over HTTPS (SQLite and PostgreSQL), a real station database: a station
dermatologist "dr-fake" reviews a capture at the station and the capture is uploaded with
that review. The case must stay in the engine's expert queue (showing the station's proposal),
must not be selected for retraining and must not go back to stations as a final review, until
a dermatologist on the engine reviews it.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from sqlalchemy import select

from skinstation.engine.ingest.models import Capture
from skinstation.engine.retraining.service import reviewed_cases
from skinstation.engine.review.models import Review
from skinstation.settings import Settings
from skinstation.storage import SyncRecords
from tests.test_engine_helpers import (
    ADMIN_PASSWORD,
    DERM_PASSWORD,
    EngineUnderTest,
    add_capture,
    ham_images,
    make_station,
    running_engine,
)
from tests.test_storage_helpers import BACKENDS, add_operator


@pytest.fixture(scope="module", params=BACKENDS)
def engine(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory,
           data_dir: Path) -> Iterator[EngineUnderTest]:
    folder = tmp_path_factory.mktemp(f"origin-{request.param}")
    with running_engine(folder, data_dir, request.param) as running:
        yield running


def _upload(engine: EngineUnderTest, token: str, records: SyncRecords, capture_id: int) -> int:
    prepared = records.upload_of(capture_id)
    answer = engine.post("/captures", token, files={
        "metadata": (None, json.dumps(prepared.metadata), "application/json"),
        "image": ("capture.png", prepared.image, "application/octet-stream")})
    assert answer.status_code == 201, answer.text
    return int(answer.json()["capture_id"])


def _queue(engine: EngineUnderTest, derm: str, ids: set[int]) -> dict[int, dict]:
    answer = engine.get("/review/queue", derm)
    assert answer.status_code == 200, answer.text
    return {item["capture_id"]: item for item in answer.json() if item["capture_id"] in ids}


def _trained(engine: EngineUnderTest, uids: set[str]) -> list[tuple[str, str]]:
    records, _ = reviewed_cases(engine.db, [])
    return [(r.image_id, r.dx) for r in records if r.image_id.removeprefix("engine-") in uids]


def _review_page(engine: EngineUnderTest) -> str:
    trust = str(engine.tls.ca_cert)
    with requests.Session() as browser:
        login = browser.post(f"{engine.url}/review/login", timeout=60, allow_redirects=False,
                             verify=trust,
                             data={"username": "drlee", "password": DERM_PASSWORD})
        assert login.status_code == 303, login.text
        page = browser.get(f"{engine.url}/review", timeout=60, verify=trust)
        assert page.status_code == 200
        return page.text


def test_station_review_is_a_proposal_until_an_engine_dermatologist_reviews(
    engine: EngineUnderTest, settings: Settings, ham_dir: Path
) -> None:
    admin = engine.login("admin", ADMIN_PASSWORD)
    code = engine.enrollment_code(admin, "Clinic Fake")
    enrolled = engine.post("/enroll", json={"code": code, "station_ref": "fake-1"})
    assert enrolled.status_code == 201, enrolled.text
    token = enrolled.json()["token"]

    station = make_station(settings)
    fake = add_operator(station.database, "dr-fake", "dermatologist")
    first, second = (add_capture(station, image, minutes=n)
                     for n, image in enumerate(ham_images(ham_dir, 2, skip=4200)))
    station.store.add_review(first.id, "mel", author_id=fake, note="trust me")
    records = SyncRecords(station.database)
    proposed, plain = (_upload(engine, token, records, c.id) for c in (first, second))
    uids = {first.uid, second.uid}

    # -- stored as a proposal: still queued, shown with the station's review ----------------
    derm = engine.login("drlee", DERM_PASSWORD)
    queue = _queue(engine, derm, {proposed, plain})
    assert sorted(queue) == sorted([proposed, plain])
    proposal = queue[proposed]["station_review"]
    assert (proposal["code"], proposal["reviewer"], proposal["note"]) == (
        "mel", "station:Clinic Fake/dr-fake", "trust me")
    assert queue[plain]["station_review"] is None
    detail = engine.get(f"/review/captures/{proposed}", derm).json()
    assert (detail["original_label"], detail["final_label"], detail["review_status"],
            detail["station_proposal"]) == ("nv", "nv", "awaiting_confirmation", "mel")
    assert [(r["origin"], r["code"]) for r in detail["reviews"]] == [("station", "mel")]
    assert engine.get(f"/review/captures/{plain}", derm).json()["review_status"] == "unreviewed"
    assert _trained(engine, uids) == []
    assert engine.get("/reviews", token).json() == []
    page = _review_page(engine)
    assert page.count("reviewed at station, awaiting confirmation") == 1
    assert re.search(r"nv<br><em>reviewed at station, awaiting confirmation: mel "
                     r"\(station:Clinic Fake/dr-fake\)</em>", page)

    # -- an engine dermatologist confirms the proposal: now it is the final label -----------
    verdict = engine.post(f"/review/captures/{proposed}", derm,
                          json={"action": "correct", "code": "mel"})
    assert verdict.status_code == 201, verdict.text
    assert sorted(_queue(engine, derm, {proposed, plain})) == [plain]
    detail = engine.get(f"/review/captures/{proposed}", derm).json()
    assert (detail["final_label"], detail["review_status"], detail["station_proposal"]) == (
        "mel", "confirmed", None)
    assert [(r["origin"], r["code"]) for r in detail["reviews"]] == [
        ("station", "mel"), ("engine", "mel")]
    assert _trained(engine, uids) == [(f"engine-{first.uid}", "mel")]
    pulled = engine.get("/reviews", token).json()
    assert [(r["capture_uid"], r["origin"], r["code"], r["reviewer"]) for r in pulled] == [
        (first.uid, "engine", "mel", "drlee")]
    assert "reviewed at station" not in _review_page(engine)
    with engine.db.transaction() as session:
        stored = session.execute(
            select(Review.origin, Review.reviewer_id.is_(None), Review.code)
            .join(Capture, Capture.id == Review.capture_id)
            .where(Capture.uid.in_(uids)).order_by(Review.id)).all()
    assert [tuple(row) for row in stored] == [("station", True, "mel"), ("engine", False, "mel")]
    station.database.engine.dispose()
