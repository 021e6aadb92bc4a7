"""Classify-as-a-service against a real engine: ``skinstation engine serve`` with 2 uvicorn
workers over HTTPS on 127.0.0.1, SQLite and PostgreSQL, the tiny real model deployed, real
HAM10000 images. Each worker classifies in 1 thread with no queue, so a burst meets 503."""

from __future__ import annotations

import base64
import csv
import datetime as dt
import io
import math
import re
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import requests
from PIL import Image
from sqlalchemy import func, select

from skinstation.engine.audit import service as audit
from skinstation.engine.audit.models import AuditEvent
from skinstation.engine.database import EngineDatabase
from skinstation.engine.ingest.models import Capture, CapturePrediction
from skinstation.engine.models import service as registry
from skinstation.engine.models.models import ModelStatus
from skinstation.engine.providers.classify import audited_end_user
from skinstation.engine.retraining import service as retraining
from skinstation.inference.classifier import Classifier, Prediction
from skinstation.inference.preprocessing import decode_image
from skinstation.inference.quality import assess_quality
from skinstation.settings import QualitySettings
from tests.test_engine_helpers import (
    ADMIN_PASSWORD,
    DERM_PASSWORD,
    EngineUnderTest,
    engine_database_url,
    make_tls,
    start_engine,
)
from tests.test_storage_helpers import BACKENDS

MAX_IMAGE = 60_000
CLASSIFY_LIMIT = MAX_IMAGE * 4 // 3 + 64 * 1024


@dataclass(frozen=True)
class Case:
    """A real image and what the station's classifier says about it."""

    data: bytes
    prediction: Prediction


def _clear_of_edges(prediction: Prediction, assessability_threshold: float | None,
                    margin: float = 1e-4) -> bool:
    """True unless a score lies within ``margin`` of a threshold it is compared with: the
    assessability score of the not-assessable threshold, a group probability of the rule's 0.5
    or of the referral threshold. Thresholds are fitted on the tiny model's validation images,
    so one of them sits exactly on each; the engine (one torch thread) and the station (two)
    compute its score about 1e-9 apart, and the answer flips either way."""
    score = prediction.assessability_score
    if (score is not None and assessability_threshold is not None
            and abs(score - assessability_threshold) <= margin):
        return False
    if not prediction.assessable:
        return True
    edges = [0.5] + ([prediction.referral_threshold]
                     if prediction.referral_threshold is not None else [])
    return all(abs(value - edge) > margin
               for value in prediction.group_probs.values() for edge in edges)


@pytest.fixture(scope="module")
def cases(tiny_model: Path, tiny_manifest: Path, ham_dir: Path) -> dict[str, list[Case]]:
    """Real images the station classifies as assessable (2) and not assessable (1)."""
    classifier = Classifier.load(tiny_model)
    with open(tiny_manifest, newline="") as stream:
        paths = [Path(row["image"]) for row in csv.DictReader(stream)]
    paths += sorted((ham_dir / "images").glob("ISIC_00243*.jpg"))
    found: dict[str, list[Case]] = {"assessable": [], "not_assessable": []}
    for path in paths:
        prediction = classifier.classify(decode_image(path))
        if not _clear_of_edges(prediction, classifier.assessability.threshold):
            continue  # compared to 1e-5 below: a probability on a threshold could flip either way
        bucket = found["assessable" if prediction.assessable else "not_assessable"]
        bucket.append(Case(path.read_bytes(), prediction))
        if len(found["assessable"]) >= 2 and found["not_assessable"]:
            break
    assert len(found["assessable"]) >= 2 and found["not_assessable"]
    return found


@pytest.fixture(scope="module", params=BACKENDS)
def engine(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory,
           data_dir: Path, tiny_model: Path) -> Iterator[EngineUnderTest]:
    folder = tmp_path_factory.mktemp(f"provider-{request.param}")
    with pytest.MonkeyPatch.context() as patch, engine_database_url(request.param) as url:
        patch.setenv("SKINSTATION_ENGINE_CLASSIFY_THREADS", "1")
        patch.setenv("SKINSTATION_ENGINE_CLASSIFY_QUEUE", "0")
        running = start_engine(folder, data_dir, make_tls(folder / "tls"), database_url=url,
                               workers=2, options={"max_image_bytes": MAX_IMAGE})
        registry.register_model(running.db, tiny_model, status=ModelStatus.PROMOTED,
                                actor="test")
        registry.deploy(running.db, "tiny-test-model", action="initial", actor="test",
                        reason="initial model")
        try:
            yield running
        finally:
            running.server.stop()
            running.db.dispose()


@pytest.fixture(scope="module")
def admin(engine: EngineUnderTest) -> str:
    return engine.login("admin", ADMIN_PASSWORD)


def _provider(engine: EngineUnderTest, admin: str, name: str, *, per_minute: int = 600,
              per_day: int = 10_000, scopes: tuple[str, ...] = ("classify",)) -> tuple[int, str]:
    created = engine.post("/admin/providers", admin, json={
        "name": name, "requests_per_minute": per_minute, "requests_per_day": per_day})
    assert created.status_code == 201, created.text
    provider_id = created.json()["provider_id"]
    key = engine.post(f"/admin/providers/{provider_id}/keys", admin,
                      json={"scopes": list(scopes)})
    assert key.status_code == 201, key.text
    return provider_id, key.json()["key"]


def _classify(engine: EngineUnderTest, key: str | None, image: bytes, **fields: Any
              ) -> requests.Response:
    form = {"end_user_id": "u-100", "device_id": "phone-7",
            **{k: str(v).lower() if isinstance(v, bool) else str(v) for k, v in fields.items()}}
    return engine.post("/classify", key, files={"image": ("lesion.jpg", image, "image/jpeg")},
                       data=form)


def _stored(db: EngineDatabase) -> tuple[int, int, int, int]:
    """Captures, predictions, image files and audit rows on the engine."""
    with db.transaction() as session:
        captures = session.scalar(select(func.count()).select_from(Capture))
        predictions = session.scalar(select(func.count()).select_from(CapturePrediction))
        audit_rows = session.scalar(select(func.count()).select_from(AuditEvent))
    return captures, predictions, len(list(db.images.files())), audit_rows


def _usage(engine: EngineUnderTest, key: str) -> dict[str, int]:
    rows = engine.get("/provider/usage", key).json()
    assert len(rows) <= 1, rows
    return {k: v for k, v in rows[0].items() if k != "day"} if rows else {}


def _usage_of(**counts: int) -> dict[str, int]:
    names = ("requests", "classified", "not_assessable", "submitted", "rejected", "failed",
             "throttled", "busy")
    return {name: counts.get(name, 0) for name in names}


def _fresh_minute() -> None:
    """Wait out the last seconds of a UTC minute so a quota test stays in one window."""
    second = dt.datetime.now(dt.UTC).second
    if second >= 45:
        time.sleep(61 - second)


def _png(width: int, height: int, noise: bool = False) -> bytes:
    rng = np.random.default_rng(7)
    pixels = (rng.integers(0, 256, (height, width, 3), dtype=np.uint8) if noise
              else np.full((height, width, 3), 120, np.uint8))
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG", compress_level=0 if noise else 6)
    return buffer.getvalue()


def test_openapi_documents_every_provider_route_with_examples(engine: EngineUnderTest) -> None:
    spec = engine.get("/openapi.json").json()
    routes = {("post", "/api/v1/classify"), ("get", "/api/v1/provider/me"),
              ("get", "/api/v1/provider/usage"), ("post", "/api/v1/admin/providers"),
              ("get", "/api/v1/admin/providers"),
              ("patch", "/api/v1/admin/providers/{provider_id}"),
              ("post", "/api/v1/admin/providers/{provider_id}/keys"),
              ("get", "/api/v1/admin/providers/{provider_id}/keys"),
              ("post", "/api/v1/admin/provider-keys/{key_id}/revoke"),
              ("post", "/api/v1/admin/provider-keys/{key_id}/rotate"),
              ("get", "/api/v1/admin/providers/{provider_id}/usage")}
    assert {(m, p) for p, item in spec["paths"].items() for m in item} >= routes
    schemas = spec["components"]["schemas"]

    def example_of(schema: dict) -> list:
        schema = schema.get("items", schema)
        if "$ref" in schema:
            schema = schemas[schema["$ref"].rsplit("/", 1)[1]]
        return schema.get("examples", [])

    for method, path in routes:
        operation = spec["paths"][path][method]
        assert operation["description"], (method, path)
        success = next(v for k, v in operation["responses"].items() if k.startswith("2"))
        assert example_of(success["content"]["application/json"]["schema"]), (method, path)
        for body in operation.get("requestBody", {}).get("content", {}).values():
            assert example_of(body["schema"]), (method, path)
    classify = spec["paths"]["/api/v1/classify"]["post"]
    body = classify["requestBody"]["content"]
    assert set(body) == {"multipart/form-data", "application/json"}
    assert body["multipart/form-data"]["schema"]["required"] == ["image", "end_user_id",
                                                                 "device_id"]
    assert body["application/json"]["schema"]["examples"][0]["end_user_id"] == "u-7f3a9c"
    assert set(classify["responses"]) == {"200", "400", "401", "403", "413", "415", "422",
                                          "429", "503"}
    assert "Retry-After" in classify["responses"]["429"]["headers"]
    assert {"ProviderKeyBearer", "ProviderKeyHeader"} <= set(spec["components"]
                                                             ["securitySchemes"])


def test_key_lifecycle_create_use_rotate_revoke(engine: EngineUnderTest, admin: str,
                                                cases: dict[str, list[Case]]) -> None:
    image = cases["assessable"][0].data
    derm = engine.login("drlee", DERM_PASSWORD)
    refused = engine.post("/admin/providers", derm, json={"name": "Nope"})
    assert (refused.status_code, refused.json()) == (
        403, {"detail": "this needs the admin role; 'drlee' is dermatologist"})
    provider_id, key = _provider(engine, admin, "Lifecycle Health")
    listed = engine.get(f"/admin/providers/{provider_id}/keys", admin).json()
    assert [(k["key_id"], k["scopes"], k["active"]) for k in listed] == [
        (key.split("_")[1], ["classify"], True)]
    assert "key" not in listed[0] and key not in engine.get(
        f"/admin/providers/{provider_id}/keys", admin).text
    me = {"provider_id": provider_id, "name": "Lifecycle Health", "key_id": key.split("_")[1],
          "scopes": ["classify"], "requests_per_minute": 600, "requests_per_day": 10_000}
    assert engine.get("/provider/me", key).json() == me
    assert engine.get("/provider/me", headers={"X-API-Key": key}).json() == me

    session_token = engine.login("admin", ADMIN_PASSWORD)
    before = _stored(engine.db)
    missing = _classify(engine, None, image)
    assert (missing.status_code, missing.json()) == (401, {
        "detail": "missing API key: send 'Authorization: Bearer spk_...' or "
                  "'X-API-Key: spk_...'"})
    for wrong in (key[:-4] + ("AAAA" if not key.endswith("AAAA") else "BBBB"), session_token):
        answer = _classify(engine, wrong, image)
        assert (answer.status_code, answer.json()) == (401, {"detail": "invalid API key"})
    assert _stored(engine.db) == before and _usage(engine, key) == {}

    assert _classify(engine, key, image).status_code == 200
    rotated = engine.post(f"/admin/provider-keys/{key.split('_')[1]}/rotate", admin, json={})
    assert rotated.status_code == 201
    new_key, old_id = rotated.json()["key"], key.split("_")[1]
    assert rotated.json()["rotated_from"] == old_id and new_key != key
    old = _classify(engine, key, image)
    assert (old.status_code, old.json()) == (401, {
        "detail": f"API key {old_id} was revoked; ask the engine administrator for a new key"})
    assert _classify(engine, new_key, image).status_code == 200
    new_id = new_key.split("_")[1]
    revoked = engine.post(f"/admin/provider-keys/{new_id}/revoke", admin)
    assert (revoked.status_code, revoked.json()["active"]) == (200, False)
    after = _classify(engine, new_key, image)
    assert (after.status_code, after.json()["detail"]) == (
        401, f"API key {new_id} was revoked; ask the engine administrator for a new key")
    assert engine.get("/provider/me", new_key).status_code == 401

    _, other = _provider(engine, admin, "Lifecycle Other")
    assert engine.get("/provider/me", other).status_code == 200
    other_id = engine.get("/provider/me", other).json()["provider_id"]
    disabled = engine.request("PATCH", f"/admin/providers/{other_id}", admin,
                              json={"disabled": True})
    assert (disabled.status_code, disabled.json()["disabled"]) == (200, True)
    blocked = _classify(engine, other, image)
    assert (blocked.status_code, blocked.json()) == (
        403, {"detail": "provider 'Lifecycle Other' is disabled on this engine"})
    log = engine.get("/admin/audit", admin, params={"actor": "account:admin"}).json()
    keys_log = [(r["action"], r["entity_id"]) for r in log if r["action"].startswith(
        "provider_key.") and r["entity_id"] in (old_id, new_id)]
    assert keys_log == [("provider_key.created", old_id), ("provider_key.created", new_id),
                        ("provider_key.rotated", old_id), ("provider_key.revoked", new_id)]
    assert _stored(engine.db)[:3] == before[:3]


def test_classify_gives_the_station_classifiers_answer(engine: EngineUnderTest, admin: str,
                                                       cases: dict[str, list[Case]]) -> None:
    _, key = _provider(engine, admin, "Exact Match Clinic")
    before = _stored(engine.db)
    calls = 0
    for case in [*cases["assessable"], *cases["not_assessable"]]:
        expected = case.prediction
        for language in ("en", "ko"):
            if language == "en":
                answer = _classify(engine, key, case.data, language="en")
            else:
                answer = engine.post("/classify", key, json={
                    "image_base64": base64.b64encode(case.data).decode(), "end_user_id": "u-9",
                    "device_id": "kiosk-2", "language": "ko", "quality": False})
            calls += 1
            assert answer.status_code == 200, answer.text
            body = answer.json()
            assert answer.headers["X-Request-ID"] == body["request_id"]
            assert set(body["class_probabilities"]) == set(expected.class_probs)
            for name, value in expected.class_probs.items():
                assert abs(body["class_probabilities"][name] - value) <= 1e-5, name
            for name, value in expected.group_probs.items():
                assert abs(body["group_probabilities"][name] - value) <= 1e-5, name
            assert (body["decision"], body["referral"], body["referral_threshold"],
                    body["assessable"], body["model_version"]) == (
                expected.decision, expected.referral, expected.referral_threshold,
                expected.assessable, "tiny-test-model")
            assert body["top_class"] == (expected.top_class or None)
            assert body["not_assessable_reason"] == (expected.not_assessable_reason or None)
            assert (body["guidance"], body["decision_text"], body["language"]) == (
                expected.guidance(language), expected.decision_text(language), language)
            assert (body["consent"], body["stored_for_review"], body["submission_id"]) == (
                False, False, None)
            if language == "en":
                quality = assess_quality(decode_image(case.data), QualitySettings()).to_dict()
                assert body["quality"] == quality
            else:
                assert body["quality"] is None
    heat = _classify(engine, key, cases["assessable"][0].data, heatmap=True).json()
    assert heat["heatmap_url"].startswith("data:image/png;base64,")
    overlay = Image.open(io.BytesIO(base64.b64decode(heat["heatmap_url"].split(",", 1)[1])))
    assert (overlay.format, overlay.size) == ("PNG", (224, 224))
    assert _stored(engine.db)[:3] == before[:3]  # no consent: nothing of the images kept
    assert _usage(engine, key) == _usage_of(requests=calls + 1, classified=calls + 1,
                                            not_assessable=2 * len(cases["not_assessable"]))


def test_bad_and_oversized_images_are_refused_and_nothing_is_stored(
    engine: EngineUnderTest, admin: str, cases: dict[str, list[Case]]
) -> None:
    _, key = _provider(engine, admin, "Bad Images Inc")
    good = cases["assessable"][0].data
    gif = io.BytesIO()
    Image.new("RGB", (64, 64), (200, 100, 50)).save(gif, format="GIF")
    formats = "PNG, JPEG, TIFF, BMP, WEBP"
    refused_in_pool = [
        (b"%PDF-1.4 not an image at all", f"the upload is not an image file ({formats}); "
                                          "nothing stored"),
        (gif.getvalue(), f"image format GIF is not accepted (use {formats}); nothing stored"),
        (_png(16, 40), "image is 16x40 pixels; both sides must be at least 32; nothing stored"),
        (_png(10_001, 40), "image is 10001x40 pixels; at most 10000 per side and 40000000 "
                           "pixels in all; nothing stored"),
        (good[: len(good) // 2], re.compile(r"cannot decode image \(upload\): image file is "
                                            r"truncated \(\d+ bytes not processed\); nothing "
                                            r"stored")),
    ]
    before = _stored(engine.db)
    for data, detail in refused_in_pool:
        answer = _classify(engine, key, data)
        assert answer.status_code == 422, answer.text
        if isinstance(detail, re.Pattern):
            assert detail.fullmatch(answer.json()["detail"]), answer.json()
        else:
            assert answer.json() == {"detail": detail}
    refused_at_the_door = [
        (_classify(engine, key, _png(200, 200, noise=True)),
         413, f"image larger than {MAX_IMAGE} bytes; nothing stored"),
        (_classify(engine, key, _png(320, 320, noise=True)),
         413, f"request body larger than {CLASSIFY_LIMIT} bytes; nothing stored"),
        (_classify(engine, key, good, name="Jane Doe"),
         422, "end-user names are never accepted (field name); send only your pseudonymous "
              "end_user_id; nothing stored"),
        (engine.post("/classify", key, json={"image_base64": "@@not base64@@",
                                              "end_user_id": "u1", "device_id": "d1"}),
         422, "image_base64 is not valid base64; nothing stored"),
        (engine.post("/classify", key, files={"image": ("x.jpg", good)},
                     data={"device_id": "d1"}),
         422, "invalid classify request: end_user_id: Field required; nothing stored"),
        (_classify(engine, key, good, end_user_id="Jane Doe"),
         422, "invalid classify request: end_user_id: String should match pattern "
              "'^[A-Za-z0-9._:-]{1,128}$'; nothing stored"),
        (engine.post("/classify", key, data=good, headers={"Content-Type": "image/jpeg"}),
         415, "content type image/jpeg is not accepted; send multipart/form-data or "
              "application/json"),
    ]
    for answer, status, detail in refused_at_the_door:
        assert (answer.status_code, answer.json()) == (status, {"detail": detail})
    assert _stored(engine.db)[:3] == before[:3]
    n = len(refused_in_pool)
    assert _usage(engine, key) == _usage_of(requests=n, rejected=n)
    log = engine.get("/admin/audit", admin, params={"action": "provider.classify_rejected"})
    reasons = [r["detail"]["reason"] for r in log.json()
               if r["detail"]["key_id"] == key.split("_")[1]]
    assert reasons[:2] == [refused_in_pool[0][1], refused_in_pool[1][1]] and len(reasons) == n


def test_consent_decides_what_enters_review_and_retraining(
    engine: EngineUnderTest, admin: str, cases: dict[str, list[Case]]
) -> None:
    name = "Consent Derm App"
    provider_id, key = _provider(engine, admin, name,
                                 scopes=("classify", "submit-for-review"))
    _, classify_only = _provider(engine, admin, "Classify Only Co")
    first, second = (case.data for case in cases["assessable"][:2])
    before = _stored(engine.db)
    forbidden = _classify(engine, classify_only, first, consent=True)
    assert (forbidden.status_code, forbidden.json()) == (403, {"detail": (
        f"API key {classify_only.split('_')[1]} lacks the 'submit-for-review' scope (it has: "
        "classify)")})
    assert _stored(engine.db) == before and _usage(engine, classify_only) == {}

    access = "2025-06-01T09:30:00+09:00"
    kept = _classify(engine, key, first, consent=True, end_user_id="u-consent",
                     device_id="tablet-3", access_time=access, body_site="left_forearm")
    assert kept.status_code == 200, kept.text
    body = kept.json()
    assert (body["stored_for_review"], body["submission_id"]) == (True, body["request_id"])
    retry = _classify(engine, key, first, consent=True, end_user_id="u-consent",
                      device_id="tablet-3").json()
    assert (retry["stored_for_review"], retry["submission_id"]) == (True, body["request_id"])
    other = _classify(engine, key, second, consent=False, end_user_id="u-private").json()
    assert (other["stored_for_review"], other["submission_id"]) == (False, None)
    captures, predictions, files, _ = _stored(engine.db)
    assert (captures, predictions, files) == (before[0] + 1, before[1] + 1, before[2] + 1)

    derm = engine.login("drlee", DERM_PASSWORD)
    queue = [item for item in engine.get("/review/queue", derm).json()
             if item["source"] == "provider"]
    assert [(q["uid"], q["station"], q["pseudonym"], q["body_site"], q["decision"])
            for q in queue] == [(body["request_id"], f"provider:{name}", "u-consent",
                                 "left_forearm", body["decision"])]
    detail = engine.get(f"/review/captures/{queue[0]['capture_id']}", derm).json()
    assert (detail["source"], detail["provider"], detail["pseudonym"], detail["device_id"],
            detail["access_time"], detail["station"]) == (
        "provider", name, "u-consent", "tablet-3", "2025-06-01T00:30:00+00:00", None)
    assert detail["received_at"] == body["received_at"].replace("Z", "+00:00")
    picture = engine.get(f"/review/captures/{queue[0]['capture_id']}/image", derm)
    assert picture.content == first
    verdict = engine.post(f"/review/captures/{queue[0]['capture_id']}", derm,
                          json={"action": "correct", "code": "bkl"})
    assert verdict.status_code == 201, verdict.text
    records, _ = retraining.reviewed_cases(engine.db, [])
    mine = [r for r in records if r.patient_id.startswith("engine-provider")]
    assert [(r.image_id, r.dx, r.patient_id) for r in mine] == [
        (f"engine-{body['request_id']}", "bkl", f"engine-provider{provider_id}:u-consent")]
    assert _usage(engine, key) == _usage_of(requests=3, classified=3, submitted=1)
    with engine.db.transaction() as session:
        rows = audit.query(session, action="provider.classified")
        mine_log = [r.detail for r in rows if r.detail["provider_id"] == provider_id]
    # the audit log (append-only, beyond erasure) holds the end user's id only encrypted
    assert all(d["end_user_id"].startswith("enc:v1:d:") for d in mine_log)
    assert [(d["end_user_id"], d["consent"], d["submission"]) for d in mine_log] == [
        (audited_end_user("u-consent"), True, body["request_id"]),
        (audited_end_user("u-consent"), True, body["request_id"]),
        (audited_end_user("u-private"), False, None)]


def test_quotas_answer_429_with_retry_after_and_usage_counts_are_exact(
    engine: EngineUnderTest, admin: str, cases: dict[str, list[Case]]
) -> None:
    image = cases["assessable"][0].data
    provider_id, key = _provider(engine, admin, "Per Minute Ltd", per_minute=3)
    _fresh_minute()
    first = _classify(engine, key, image)
    assert (first.headers["X-RateLimit-Limit-Minute"],
            first.headers["X-RateLimit-Remaining-Minute"],
            first.headers["X-RateLimit-Remaining-Day"]) == ("3", "2", "9999")
    assert [_classify(engine, key, image).status_code for _ in range(2)] == [200, 200]
    for _ in range(2):
        throttled = _classify(engine, key, image)
        assert (throttled.status_code, throttled.json()) == (429, {"detail": (
            "rate limit of 3 requests per minute reached for provider 'Per Minute Ltd'; "
            "retry after Retry-After seconds")})
        assert 1 <= int(throttled.headers["Retry-After"]) <= 60
    expected = _usage_of(requests=3, classified=3, throttled=2)
    assert _usage(engine, key) == expected
    admin_view = engine.get(f"/admin/providers/{provider_id}/usage", admin).json()
    assert [{k: v for k, v in row.items() if k != "day"} for row in admin_view] == [expected]
    assert admin_view[0]["day"] == dt.datetime.now(dt.UTC).date().isoformat()

    _, daily = _provider(engine, admin, "Per Day Ltd", per_minute=100, per_day=2)
    assert [_classify(engine, daily, image).status_code for _ in range(2)] == [200, 200]
    midnight = dt.datetime.combine(dt.datetime.now(dt.UTC).date() + dt.timedelta(days=1),
                                   dt.time(), dt.UTC)
    left_before = (midnight - dt.datetime.now(dt.UTC)).total_seconds()
    over = _classify(engine, daily, image)
    left_after = (midnight - dt.datetime.now(dt.UTC)).total_seconds()
    assert (over.status_code, over.json()) == (429, {"detail": (
        "daily quota of 2 requests reached for provider 'Per Day Ltd'; retry after "
        "Retry-After seconds")})
    # the server rounds up the seconds to midnight at some instant during the request
    assert math.ceil(left_after) <= int(over.headers["Retry-After"]) <= math.ceil(left_before)
    assert _usage(engine, daily) == _usage_of(requests=2, classified=2, throttled=1)


def test_a_burst_beyond_the_pool_gets_503_quickly(engine: EngineUnderTest, admin: str,
                                                 cases: dict[str, list[Case]]) -> None:
    _, key = _provider(engine, admin, "Burst Platform")
    image = cases["assessable"][1].data
    answers: list[tuple[int, dict, str | None, float]] = []
    lock = threading.Lock()
    start = threading.Barrier(16)

    def call() -> None:
        start.wait()
        began = time.monotonic()
        answer = _classify(engine, key, image, heatmap=True)
        with lock:
            answers.append((answer.status_code, answer.json(), answer.headers.get("Retry-After"),
                            time.monotonic() - began))

    threads = [threading.Thread(target=call) for _ in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    ok = [a for a in answers if a[0] == 200]
    busy = [a for a in answers if a[0] == 503]
    assert len(ok) + len(busy) == 16 and ok and busy
    assert {(a[1]["detail"], a[2]) for a in busy} == {(
        "the engine is busy (this worker already runs or queues 1 classify calls, its "
        "maximum); retry after Retry-After seconds", "1")}
    assert max(a[3] for a in busy) < 5.0
    assert _usage(engine, key) == _usage_of(requests=len(ok), classified=len(ok),
                                            busy=len(busy))
