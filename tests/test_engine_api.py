"""The engine API served by uvicorn (2 worker processes, HTTPS) on SQLite and PostgreSQL."""

from __future__ import annotations

import hashlib
import itertools
import json
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import func, select

from skinstation.engine.database import EngineDatabase
from skinstation.engine.ingest.models import Capture, CapturePrediction, Patient
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
from tests.test_storage_helpers import BACKENDS


@pytest.fixture(scope="module", params=BACKENDS)
def engine(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory,
           data_dir: Path) -> Iterator[EngineUnderTest]:
    folder = tmp_path_factory.mktemp(f"engine-{request.param}")
    with running_engine(folder, data_dir, request.param, workers=2,
                        options={"max_image_bytes": 200_000}) as running:
        yield running


@pytest.fixture(scope="module")
def admin(engine: EngineUnderTest) -> str:
    return engine.login("admin", ADMIN_PASSWORD)


def _enroll(engine: EngineUnderTest, admin: str, name: str) -> str:
    code = engine.enrollment_code(admin, name)
    response = engine.post("/enroll", json={"code": code, "station_ref": name})
    assert response.status_code == 201, response.text
    return response.json()["token"]


def _counts(db: EngineDatabase) -> tuple[int, int, int]:
    with db.transaction() as session:
        captures = session.scalar(select(func.count()).select_from(Capture))
        predictions = session.scalar(select(func.count()).select_from(CapturePrediction))
    return captures, predictions, len(list(db.images.files()))


def _files(metadata: dict, image: bytes) -> dict:
    return {"metadata": (None, json.dumps(metadata), "application/json"),
            "image": ("capture.jpg", image, "image/jpeg")}


_IMAGES = itertools.count(700)


@pytest.fixture()
def upload(tmp_path: Path, ham_dir: Path, settings: Settings) -> tuple[dict, bytes]:
    """A capture of a real image no other test uploads, as the station sends it."""
    station = make_station(settings)
    capture = add_capture(station, ham_images(ham_dir, 1, skip=next(_IMAGES))[0],
                          decision="skin_cancer", referral=True)
    prepared = SyncRecords(station.database).upload_of(capture.id)
    return prepared.metadata, prepared.image


def test_openapi_documents_the_versioned_routes(engine: EngineUnderTest) -> None:
    spec = engine.get("/openapi.json").json()
    assert spec["info"]["title"] == "SkinStation engine API"
    assert {"/api/v1/enroll", "/api/v1/captures", "/api/v1/reviews", "/api/v1/models/current",
            "/api/v1/review/queue", "/api/v1/admin/training-jobs",
            "/api/v1/admin/models/rollback"} <= set(spec["paths"])
    docs = engine.get("/docs")
    assert docs.status_code == 200 and "swagger" in docs.text.lower()


def test_enrollment_and_every_request_is_authenticated(
    engine: EngineUnderTest, admin: str
) -> None:
    code = engine.enrollment_code(admin, "Clinic Auth")
    enrolled = engine.post("/enroll", json={"code": code, "station_ref": "st-auth"})
    assert enrolled.status_code == 201
    body = enrolled.json()
    assert body["token"].startswith("sst_") and len(body["public_key"]) == 44
    again = engine.post("/enroll", json={"code": code, "station_ref": "st-auth"})
    assert (again.status_code, again.json()) == (
        401, {"detail": "enrollment code is unknown, already used or expired"})

    me = engine.get("/station/me", body["token"])
    assert me.json() == {"station_id": body["station_id"], "name": "Clinic Auth",
                         "station_ref": "st-auth"}
    missing = engine.get("/reviews")
    assert (missing.status_code, missing.headers["WWW-Authenticate"]) == (401, "Bearer")
    assert engine.get("/reviews", "sst_not-a-token").json() == {
        "detail": "invalid station credential"}
    assert engine.get("/admin/stations", body["token"]).status_code == 401
    derm = engine.login("drlee", DERM_PASSWORD)
    forbidden = engine.get("/admin/stations", derm)
    assert (forbidden.status_code, forbidden.json()["detail"]) == (
        403, "this needs the admin role; 'drlee' is dermatologist")
    assert engine.post("/auth/login", json={"username": "drlee", "password": "wrong-one-1"}
                       ).status_code == 401


def test_wrong_or_revoked_token_gets_401_and_nothing_is_stored(
    engine: EngineUnderTest, admin: str, upload: tuple[dict, bytes]
) -> None:
    metadata, image = upload
    token = _enroll(engine, admin, "Clinic Revoked")
    before = _counts(engine.db)
    wrong = engine.post("/captures", token[:-4] + "AAAA", files=_files(metadata, image))
    assert (wrong.status_code, wrong.json()) == (401, {"detail": "invalid station credential"})
    station_id = engine.get("/station/me", token).json()["station_id"]
    revoked = engine.post(f"/admin/stations/{station_id}/revoke", admin)
    assert revoked.status_code == 200 and revoked.json()["revoked_at"] is not None
    refused = engine.post("/captures", token, files=_files(metadata, image))
    assert (refused.status_code, refused.json()["detail"]) == (
        401, "station credential was revoked; ask the administrator for a new enrollment code")
    assert engine.get("/reviews", token).status_code == 401
    assert _counts(engine.db) == before


def test_the_same_capture_sent_many_times_is_stored_once(
    engine: EngineUnderTest, admin: str, upload: tuple[dict, bytes]
) -> None:
    metadata, image = upload
    token = _enroll(engine, admin, "Clinic Retry")
    before = _counts(engine.db)
    first = engine.post("/captures", token, files=_files(metadata, image))
    assert first.status_code == 201 and first.json()["duplicate"] is False
    statuses: list[int] = []
    lock = threading.Lock()

    def send() -> None:
        answer = engine.post("/captures", token, files=_files(metadata, image))
        with lock:
            statuses.append(answer.status_code)

    threads = [threading.Thread(target=send) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert statuses == [200] * 6
    assert _counts(engine.db) == (before[0] + 1, before[1] + 1, before[2] + 1)
    receipt = engine.get(f"/captures/{metadata['capture']['uid']}", token).json()
    assert receipt == {**first.json(), "duplicate": True}
    other_bytes = {**metadata, "capture": {**metadata["capture"], "image_sha256": "b" * 64}}
    conflict = engine.post("/captures", token, files=_files(other_bytes, image))
    assert conflict.status_code == 409
    assert "is already stored with image sha256" in conflict.json()["detail"]
    with engine.db.transaction() as session:
        assert session.scalar(select(Patient.name).where(Patient.pseudonym == "P-0001")) is None


def test_corrupt_partial_and_oversized_uploads_store_nothing(
    engine: EngineUnderTest, admin: str, upload: tuple[dict, bytes]
) -> None:
    metadata, image = upload
    token = _enroll(engine, admin, "Clinic Corrupt")
    uid, size = metadata["capture"]["uid"], len(image)
    before = _counts(engine.db)

    partial = engine.post("/captures", token, files=_files(metadata, image[: size // 2]))
    assert (partial.status_code, partial.json()["detail"]) == (
        422, f"capture {uid}: received {size // 2} image bytes, metadata says {size}; upload "
             "incomplete or corrupt, nothing stored")
    corrupt = image[:-10] + bytes(10)
    flipped = engine.post("/captures", token, files=_files(metadata, corrupt))
    assert flipped.status_code == 422 and "upload corrupt, nothing stored" in flipped.text
    junk = b"\x89PNG not really" + bytes(100)
    junk_meta = {**metadata, "capture": {**metadata["capture"], "image_size": len(junk),
                                         "image_sha256": hashlib.sha256(junk).hexdigest()}}
    undecodable = engine.post("/captures", token, files=_files(junk_meta, junk))
    assert undecodable.status_code == 422 and "image bytes do not decode" in undecodable.text
    bad_json = engine.post("/captures", token, files={"metadata": (None, "{not json"),
                                                      "image": ("x.jpg", image)})
    assert bad_json.status_code == 422
    assert bad_json.json()["detail"].startswith("invalid capture metadata:")
    naive = {**metadata, "capture": {**metadata["capture"], "capture_time": "2025-05-01T09:00"}}
    assert "capture.capture_time: Input should have timezone info" in engine.post(
        "/captures", token, files=_files(naive, image)).json()["detail"]

    too_big = engine.post("/captures", token, files=_files(metadata, bytes(600_000)))
    assert too_big.status_code == 413
    assert too_big.json()["detail"].endswith("bytes; nothing stored")

    def chunks() -> Iterator[bytes]:  # no Content-Length: counted while streaming
        yield (b'--x\r\nContent-Disposition: form-data; name="metadata"\r\n\r\n{}\r\n'
               b'--x\r\nContent-Disposition: form-data; name="image"; filename="a.jpg"\r\n'
               b"Content-Type: image/jpeg\r\n\r\n")
        for _ in range(40):
            yield bytes(16_384)

    streamed = engine.post("/captures", token, data=chunks(),
                           headers={"Content-Type": "multipart/form-data; boundary=x"})
    assert streamed.status_code == 413
    assert _counts(engine.db) == before


def test_review_queue_review_and_pull_back_with_audit(
    engine: EngineUnderTest, admin: str, upload: tuple[dict, bytes]
) -> None:
    metadata, image = upload
    token = _enroll(engine, admin, "Clinic Review")
    stored = engine.post("/captures", token, files=_files(metadata, image)).json()
    derm = engine.login("drlee", DERM_PASSWORD)
    queue = engine.get("/review/queue", derm).json()
    mine = [q for q in queue if q["uid"] == metadata["capture"]["uid"]]
    assert mine and mine[0]["urgent"] is True and mine[0]["station"] == "Clinic Review"
    assert mine[0]["decision"] == "skin_cancer" and mine[0]["original_label"] == "nv"
    picture = engine.get(f"/review/captures/{stored['capture_id']}/image", derm)
    assert (picture.content, picture.headers["content-type"]) == (image, "image/jpeg")
    verdict = engine.post(f"/review/captures/{stored['capture_id']}", derm,
                          json={"action": "correct", "code": "mel", "note": "regression"})
    assert verdict.status_code == 201
    detail = engine.get(f"/review/captures/{stored['capture_id']}", derm).json()
    assert (detail["original_label"], detail["final_label"]) == ("nv", "mel")

    pulled = engine.get("/reviews", token, params={"after": 0}).json()
    assert [(r["capture_uid"], r["code"], r["reviewer"], r["reviewer_name"]) for r in pulled] == [
        (metadata["capture"]["uid"], "mel", "drlee", "Dr Lee")]
    assert engine.get("/reviews", token, params={"after": pulled[0]["review_id"]}).json() == []
    log = engine.get("/admin/audit", admin, params={"actor": "account:drlee"}).json()
    seen = {(row["action"], row["entity_id"]) for row in log}
    capture_id = str(stored["capture_id"])
    assert {("image.viewed", capture_id), ("review.corrected", capture_id),
            ("capture.viewed", capture_id)} <= seen


def test_web_review_page_logs_in_and_confirms(
    engine: EngineUnderTest, admin: str, upload: tuple[dict, bytes]
) -> None:
    import requests

    metadata, image = upload
    token = _enroll(engine, admin, "Clinic Web")
    stored = engine.post("/captures", token, files=_files(metadata, image)).json()
    browser = requests.Session()
    browser.trust_env = False  # REQUESTS_CA_BUNDLE would override the test CA
    browser.verify = str(engine.tls.ca_cert)
    browser.headers["Connection"] = "close"
    assert "Log in" in browser.get(f"{engine.url}/review").text
    failed = browser.post(f"{engine.url}/review/login",
                          data={"username": "drlee", "password": "wrong-password"})
    assert failed.status_code == 401 and "wrong username or password" in failed.text
    page = browser.post(f"{engine.url}/review/login",
                        data={"username": "drlee", "password": DERM_PASSWORD})
    assert page.status_code == 200 and "case(s) waiting" in page.text
    assert f"/review/image/{stored['capture_id']}" in page.text
    assert page.headers["Content-Security-Policy"].startswith("default-src 'self'")
    cookie = next(c for c in browser.cookies if c.name == "skinstation_login")
    assert cookie.secure and cookie.has_nonstandard_attr("HttpOnly")
    done = browser.post(f"{engine.url}/review/{stored['capture_id']}",
                        data={"action": "confirm", "code": "mel"})
    assert done.status_code == 200
    assert f"/review/image/{stored['capture_id']}" not in done.text
    pulled = engine.get("/reviews", token).json()
    assert [(r["code"], r["action"]) for r in pulled] == [("nv", "confirm")]
    browser.close()


def test_plain_http_is_refused_off_loopback(tmp_path: Path) -> None:
    from skinstation.engine.errors import InvalidError
    from skinstation.engine.server import serve

    settings = Settings.load(env={}, home=tmp_path)
    with pytest.raises(InvalidError) as refused:
        serve(settings, host="0.0.0.0")
    assert str(refused.value) == (
        "refusing plain HTTP on 0.0.0.0: give --ssl-certfile/--ssl-keyfile, or "
        "--allow-plain-http when a TLS-terminating load balancer is in front")
    with pytest.raises(InvalidError, match="give both --ssl-certfile and --ssl-keyfile"):
        serve(settings, ssl_certfile="cert.pem")
    assert not (tmp_path / "engine").exists()  # refused before touching anything
