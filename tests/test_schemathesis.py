"""The engine keeps its OpenAPI document: a bounded schemathesis pass against a real server.

The engine runs under uvicorn over HTTPS on 127.0.0.1 (SQLite), with the bundled model
deployed. Every documented operation gets up to 20 generated requests (schema-conforming and
schema-violating, derandomized: the same requests every run) once per credential: none, a
station token, a provider API key, a dermatologist's and an administrator's login token.
Every answer must be no 5xx, a documented status, a body matching the documented schema and a
documented content type (:mod:`tests.schemathesis_pass`).

No operation is excluded. Some cases are steered to known-good values so the pass reaches past
the first check: real images (with a matching capture document) for uploads and classify
calls, stored capture uids, the deployed model version, enrollment codes, a real login.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from PIL import Image
from sqlalchemy import func, select

from skinstation.engine.audit.models import AuditEvent
from skinstation.engine.models.imports import import_model
from skinstation.engine.stations.models import EnrollmentCode
from skinstation.resources import DEFAULT_MODEL_PATH
from tests.schemathesis_pass import (
    PassFigures,
    SampleImage,
    captures_with_images,
    classify_with_images,
    load_schema,
    run_pass,
    with_values,
)
from tests.test_engine_helpers import (
    ADMIN_PASSWORD,
    DERM_PASSWORD,
    EngineUnderTest,
    ham_images,
    running_engine,
)

API = "/api/v1"
EXAMPLES = 20
UIDS = ("7d9a3c1e-0b6f-4c2a-9e51-3f8d2a6b4c10", "c2e8f5a4-91d3-4b7e-8a06-5d1f3e9c7b22")
LAST = (f"POST {API}/auth/logout",)  # would end the login the rest of the pass uses
NEVER_2XX = {
    # Only one model was ever deployed: there is nothing to roll back to.
    f"POST {API}/admin/models/rollback",
}
"""Operations that answer no 2xx in this pass, and why; every other one must answer one."""


@pytest.fixture(scope="module")
def engine(tmp_path_factory: pytest.TempPathFactory, data_dir: Path) -> Iterator[EngineUnderTest]:
    folder = tmp_path_factory.mktemp("schemathesis")
    with running_engine(folder, data_dir) as running:
        import_model(running.db, DEFAULT_MODEL_PATH, actor="test")  # the first model: deployed
        yield running


@pytest.fixture(scope="module")
def admin(engine: EngineUnderTest) -> str:
    """An admin login for set-up, made before the pass's failed logins throttle this address."""
    return engine.login("admin", ADMIN_PASSWORD)


def _small_jpeg(path: Path) -> SampleImage:
    with Image.open(path) as image:
        buffer = io.BytesIO()
        image.resize((300, 225)).save(buffer, format="JPEG", quality=85)
    return SampleImage.of(buffer.getvalue())


def _credentials(engine: EngineUnderTest, admin: str) -> dict[str, dict[str, str]]:
    """The pass's credentials (its own logins: it logs them out at the end)."""
    code = engine.enrollment_code(admin, "Clinic Fuzz")
    station = engine.post("/enroll", json={"code": code, "station_ref": "st-fuzz"}).json()
    provider = engine.post("/admin/providers", admin, json={"name": "Fuzz Provider"}).json()
    key = engine.post(f"/admin/providers/{provider['provider_id']}/keys", admin,
                      json={"scopes": ["classify", "submit-for-review"]}).json()
    derm = engine.login("drlee", DERM_PASSWORD)
    return {
        "none": {},
        "station": {"Authorization": f"Bearer {station['token']}"},
        "provider": {"X-API-Key": key["key"]},
        "dermatologist": {"Authorization": f"Bearer {derm}"},
        "admin": {"Authorization": f"Bearer {engine.login('admin', ADMIN_PASSWORD)}"},
    }


def _tweaks(engine: EngineUnderTest, admin: str, ham_dir: Path) -> dict[str, Any]:
    images = [_small_jpeg(path) for path in ham_images(ham_dir, 3, skip=900)]
    version = engine.get("/models/current", admin).json()["manifest"]["version"]
    codes = [engine.enrollment_code(admin, f"Fuzz {n}") for n in range(5)]
    spare = engine.post("/admin/providers", admin, json={"name": "Spare Provider"}).json()
    key_ids = [engine.post(f"/admin/providers/{spare['provider_id']}/keys", admin,
                           json={}).json()["key_id"] for _ in range(2)]
    return {
        f"POST {API}/captures": captures_with_images(images, UIDS),
        f"POST {API}/classify": classify_with_images(images),
        f"GET {API}/captures/{{uid}}": with_values(path={"uid": UIDS}),
        f"GET {API}/models/{{version}}/file": with_values(path={"version": [version]}),
        f"POST {API}/enroll": with_values(body={"code": codes}),
        f"POST {API}/auth/login": with_values(body={"username": ["drlee"],
                                                   "password": [DERM_PASSWORD]}),
        f"POST {API}/admin/accounts": with_values(body={"password": ["fuzz-passphrase-0042"]}),
        f"POST {API}/admin/provider-keys/{{key_id}}/revoke": with_values(
            path={"key_id": key_ids[:1]}),
        f"POST {API}/admin/provider-keys/{{key_id}}/rotate": with_values(
            path={"key_id": key_ids[1:]}),
    }


def schemathesis_pass(engine: EngineUnderTest, admin: str, ham_dir: Path,
                      max_examples: int = EXAMPLES) -> PassFigures:
    """Run the bounded pass against a running engine (the bench calls this too).

    Args:
        engine: The running engine (bundled model deployed).
        admin: An administrator's login token.
        ham_dir: The HAM10000 folder (real images to send).
        max_examples: Generated requests per operation and credential.
    """
    credentials = _credentials(engine, admin)
    tweaks = _tweaks(engine, admin, ham_dir)
    schema = load_schema(engine.url, verify=str(engine.tls.ca_cert))

    return run_pass(schema, credentials, max_examples=max_examples, tweaks=tweaks, last=LAST,
                    call_kwargs={"timeout": 60, "verify": str(engine.tls.ca_cert)})


def test_the_document_gives_every_error_its_body(engine: EngineUnderTest) -> None:
    spec = engine.get("/openapi.json").json()
    schemas = spec["components"]["schemas"]
    assert "HTTPValidationError" not in schemas and "ValidationError" not in schemas
    assert schemas["ErrorOut"]["required"] == ["detail"]
    assert [choice.get("type") for choice in
            schemas["InvalidOut"]["properties"]["detail"]["anyOf"]] == ["string", "array"]
    for path, item in spec["paths"].items():
        for method, operation in item.items():
            responses = operation["responses"]
            for status, response in responses.items():
                if int(status) < 400:
                    continue
                body = response["content"]["application/json"]["schema"]["$ref"]
                expected = "InvalidOut" if status == "422" else "ErrorOut"
                assert body == f"#/components/schemas/{expected}", (method, path, status)
            if "requestBody" in operation:
                assert {"400", "413"} <= set(responses), (method, path)
            for parameter in operation.get("parameters", []):
                if parameter["schema"].get("type") == "integer":
                    assert parameter["schema"]["maximum"] == 2**31 - 1, (path, parameter)


def test_a_station_name_with_control_characters_gets_422_and_no_code(
    engine: EngineUnderTest, admin: str,
) -> None:
    with engine.db.transaction() as session:
        before = session.scalar(select(func.count()).select_from(EnrollmentCode))
    refused = engine.post("/admin/enrollment-codes", admin, json={"station_name": "a\x1eb"})
    assert refused.status_code == 422
    assert refused.json()["detail"][0]["loc"] == ["body", "station_name"]
    blank = engine.post("/admin/enrollment-codes", admin, json={"station_name": "   "})
    assert (blank.status_code, blank.json()) == (
        422, {"detail": "station name must be a non-empty string; nothing stored"})
    with engine.db.transaction() as session:
        assert session.scalar(select(func.count()).select_from(EnrollmentCode)) == before


@pytest.mark.parametrize(("path", "body", "field"), [
    ("/admin/providers", {"name": "Acme\x00"}, "name"),
    ("/admin/providers", {"name": "Acme", "contact": "it@acme\x00"}, "contact"),
    ("/admin/providers/1/keys", {"label": "app\x00"}, "label"),
    ("/admin/accounts", {"username": "nul\x00", "password": "fuzz-passphrase-0042",
                         "role": "dermatologist"}, "username"),
    ("/admin/accounts", {"username": "drkim", "password": "fuzz-passphrase-0042",
                         "role": "dermatologist", "display_name": "Dr\x00Kim"}, "display_name"),
    ("/review/captures/1", {"action": "correct", "code": "mel", "note": "see\x00"}, "note"),
    ("/admin/models/rollback", {"reason": "bad\x1bmodel"}, "reason"),
])
def test_a_nul_in_engine_text_gets_422_naming_the_field_on_sqlite(
    engine: EngineUnderTest, admin: str, path: str, body: dict[str, str], field: str,
) -> None:
    before = _audit_rows(engine)
    refused = engine.post(path, admin, json=body)
    assert refused.status_code == 422, refused.text
    assert [problem["loc"] for problem in refused.json()["detail"]] == [["body", field]]
    assert _audit_rows(engine) == before  # nothing was done, so nothing was audited


def _audit_rows(engine: EngineUnderTest) -> int:
    with engine.db.transaction() as session:
        return session.scalar(select(func.count()).select_from(AuditEvent))


def test_generated_requests_get_only_documented_answers(engine: EngineUnderTest, admin: str,
                                                        ham_dir: Path) -> None:
    figures = schemathesis_pass(engine, admin, ham_dir)
    print(figures.summary())
    log = engine.server.log.read_text(errors="replace")[-3000:]
    assert figures.samples == [], "\n".join(figures.samples) + "\n-- engine log --\n" + log
    assert dict(figures.failures) == {}
    assert figures.by_class["5xx"] == 0
    operations = {label for label, _ in figures.by_operation}
    assert figures.operations == len(operations) >= 38
    assert figures.requests >= figures.operations * 5 * 10
    answered = {label for (label, status), _ in figures.by_operation.items()
                if 200 <= status < 300}
    assert operations - answered == NEVER_2XX
    for credential in ("station", "provider", "dermatologist", "admin"):
        assert figures.by_credential[(credential, "2xx")] > 0, credential
    anonymous = {label for (credential, label, status) in figures.answers
                 if credential == "none" and status < 300}
    # nothing else answers without a credential
    assert anonymous == {f"GET {API}/health", f"POST {API}/enroll", f"POST {API}/auth/login"}
    assert figures.by_operation[(f"POST {API}/classify", 200)] > 0
    assert figures.by_operation[(f"POST {API}/captures", 201)] == len(UIDS)
    assert figures.by_operation[(f"POST {API}/enroll", 201)] >= 1
