"""Out-of-range and malformed input is refused at entry with a clear message, never a 500.

Against a real engine (``skinstation engine serve`` over HTTPS on 127.0.0.1, SQLite and
PostgreSQL): control characters in text, implausible years, integers no database column holds
(in a field and in a path), and a 100-megapixel image, on station ingest and on provider
classification with consent. Each refusal is a 422 naming the problem, and leaves no row and
no image file behind. On the station: its storage refuses the same input before writing.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import io
import itertools
import json
import struct
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from PIL import Image
from sqlalchemy import func, select
from sqlalchemy.exc import StatementError
from starlette.requests import Request

from skinstation.core.images import ImageLimitError, ImageLimits, inspect_header
from skinstation.engine.database import EngineDatabase
from skinstation.engine.deps import out_of_range_response
from skinstation.engine.ingest.models import Capture, Patient
from skinstation.settings import Settings
from skinstation.storage import Database, StationStore, SyncRecords
from skinstation.storage import Patient as StationPatient
from tests.test_engine_helpers import (
    ADMIN_PASSWORD,
    DERM_PASSWORD,
    EngineUnderTest,
    add_capture,
    ham_images,
    make_station,
    running_engine,
)
from tests.test_storage_helpers import BACKENDS, add_operator, open_backend

TOO_BIG = 2**63
MAX_INT = 2**31 - 1
SIDE = 10_000  # a 10000 x 10000 image: 100 megapixels, each side just within the limit
PIXEL_LIMIT = (f"image is {SIDE}x{SIDE} pixels; at most 10000 per side and 40000000 pixels in "
               "all; nothing stored")


@pytest.fixture(scope="module", params=BACKENDS)
def engine(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory,
           data_dir: Path) -> Iterator[EngineUnderTest]:
    folder = tmp_path_factory.mktemp(f"input-{request.param}")
    with running_engine(folder, data_dir, request.param,
                        options={"max_image_bytes": 200_000}) as running:
        yield running


@pytest.fixture(scope="module")
def admin(engine: EngineUnderTest) -> str:
    return engine.login("admin", ADMIN_PASSWORD)


@pytest.fixture(scope="module")
def token(engine: EngineUnderTest, admin: str) -> str:
    code = engine.enrollment_code(admin, "Clinic Input")
    enrolled = engine.post("/enroll", json={"code": code, "station_ref": "st-input"})
    assert enrolled.status_code == 201, enrolled.text
    return str(enrolled.json()["token"])


_IMAGES = itertools.count(900)


@pytest.fixture()
def upload(ham_dir: Path, settings: Settings) -> tuple[dict[str, Any], bytes]:
    """A capture of a real image no other test here uploads, as the station sends it."""
    station = make_station(settings)
    capture = add_capture(station, ham_images(ham_dir, 1, skip=next(_IMAGES))[0])
    prepared = SyncRecords(station.database).upload_of(capture.id)
    return prepared.metadata, prepared.image


def _stored(db: EngineDatabase) -> tuple[int, int, int]:
    """Captures, patients and files (temporary ones included) on the engine."""
    with db.transaction() as session:
        captures = session.scalar(select(func.count()).select_from(Capture))
        patients = session.scalar(select(func.count()).select_from(Patient))
    return captures or 0, patients or 0, len(list(db.images.files()))


def _post(engine: EngineUnderTest, token: str, metadata: dict[str, Any], image: bytes) -> Any:
    return engine.post("/captures", token, files={
        "metadata": (None, json.dumps(metadata), "application/json"),
        "image": ("capture.bin", image, "application/octet-stream")})


def _with(metadata: dict[str, Any], part: str, **changes: Any) -> dict[str, Any]:
    return {**metadata, part: {**metadata[part], **changes}}


def _huge_png(folder: Path, side: int = SIDE) -> bytes:
    """A valid 1-bit grayscale PNG of ``side`` x ``side`` black pixels (about 12 kB)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return (struct.pack(">I", len(data)) + kind + data
                + struct.pack(">I", zlib.crc32(kind + data)))

    rows = (b"\x00" + bytes((side + 7) // 8)) * side  # filter byte 0, then the packed row
    png = (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", side, side, 1, 0, 0, 0, 0))
           + chunk(b"IDAT", zlib.compress(rows, 9)) + chunk(b"IEND", b""))
    path = folder / "huge.png"
    path.write_bytes(png)
    return path.read_bytes()


def _provider_key(engine: EngineUnderTest, admin: str, name: str) -> tuple[int, str]:
    created = engine.post("/admin/providers", admin, json={"name": name})
    assert created.status_code == 201, created.text
    provider_id = int(created.json()["provider_id"])
    key = engine.post(f"/admin/providers/{provider_id}/keys", admin,
                      json={"scopes": ["classify", "submit-for-review"]})
    assert key.status_code == 201, key.text
    return provider_id, str(key.json()["key"])


def _classify(engine: EngineUnderTest, key: str, image: bytes, **fields: str) -> Any:
    form = {"end_user_id": "u-input", "device_id": "phone-1", "consent": "true", **fields}
    return engine.post("/classify", key, files={"image": ("lesion.png", image, "image/png")},
                       data=form)


# -- station ingest ----------------------------------------------------------------------------

def test_control_characters_are_refused_and_nothing_is_stored(
    engine: EngineUnderTest, token: str, upload: tuple[dict[str, Any], bytes]
) -> None:
    metadata, image = upload
    before = _stored(engine.db)
    nul = _post(engine, token, _with(metadata, "patient", pseudonym="P\x00-1"), image)
    assert (nul.status_code, nul.json()) == (422, {"detail": (
        "invalid capture metadata: patient.pseudonym: Value error, pseudonym must not contain "
        "control characters; found U+0000 at position 1; nothing stored")})
    newline = _post(engine, token, _with(metadata, "capture", body_site="back\nleft"), image)
    assert (newline.status_code, newline.json()) == (422, {"detail": (
        "invalid capture metadata: capture.body_site: Value error, body_site must not contain "
        "control characters; found U+000A at position 4; nothing stored")})
    label = {**metadata["labels"][0], "note": "seen\x1b[2J"}
    escape = _post(engine, token, {**metadata, "labels": [label]}, image)
    assert (escape.status_code, escape.json()) == (422, {"detail": (
        "invalid capture metadata: labels.0.note: Value error, note must not contain control "
        "characters (line breaks and tabs are allowed); found U+001B at position 4; nothing "
        "stored")})
    assert _stored(engine.db) == before

    note = "raised border\n\tsince spring"  # a note may hold line breaks and tabs
    accepted = _post(engine, token, {**metadata, "labels": [{**label, "note": note}]}, image)
    assert accepted.status_code == 201, accepted.text
    with engine.db.transaction() as session:
        stored = session.scalar(select(Capture).where(
            Capture.uid == metadata["capture"]["uid"]))
        assert stored is not None and stored.original_label_note == note
    assert _stored(engine.db) == (before[0] + 1, before[1] + 1, before[2] + 1)


@pytest.mark.parametrize("field, value", [
    ("capture_time", "0001-01-01T00:00:00+09:00"),
    ("access_time", "9999-12-31T23:59:59-05:00"),
])
def test_implausible_years_are_refused_and_nothing_is_stored(
    engine: EngineUnderTest, token: str, upload: tuple[dict[str, Any], bytes], field: str,
    value: str,
) -> None:
    metadata, image = upload
    before = _stored(engine.db)
    answer = _post(engine, token, _with(metadata, "capture", **{field: value}), image)
    assert (answer.status_code, answer.json()) == (422, {"detail": (
        f"invalid capture metadata: capture.{field}: Value error, {field} must lie between the "
        f"years 1900 and 2200, got {value}; nothing stored")})
    assert _stored(engine.db) == before


def test_integers_beyond_the_database_are_refused_in_fields_and_paths(
    engine: EngineUnderTest, admin: str, token: str, upload: tuple[dict[str, Any], bytes]
) -> None:
    metadata, image = upload
    before = _stored(engine.db)
    slot = _with(metadata, "capture", multispectral_group_id="g-1", multispectral_index=TOO_BIG)
    answer = _post(engine, token, slot, image)
    assert (answer.status_code, answer.json()) == (422, {"detail": (
        f"invalid capture metadata: capture.multispectral_index: Input should be less than or "
        f"equal to {MAX_INT}; nothing stored")})
    assert _stored(engine.db) == before

    derm = engine.login("drlee", DERM_PASSWORD)
    for path, caller, name, where in [
        (f"/review/captures/{TOO_BIG}", derm, "capture_id", "path"),
        (f"/review/captures/{TOO_BIG}/image", derm, "capture_id", "path"),
        (f"/admin/providers/{TOO_BIG}/keys", admin, "provider_id", "path"),
        (f"/admin/training-jobs/{TOO_BIG}", admin, "job_id", "path"),
        (f"/reviews?after={TOO_BIG}", token, "after", "query"),
        (f"/admin/audit?after=0&limit={TOO_BIG}", admin, "limit", "query"),
    ]:
        refused = engine.get(path, caller)
        assert refused.status_code == 422, (path, refused.status_code, refused.text)
        problem = refused.json()["detail"][0]
        assert (problem["loc"], problem["msg"]) == (
            [where, name], f"Input should be less than or equal to {MAX_INT}"), path
    assert engine.get("/review/captures/0", derm).json()["detail"][0]["msg"] == (
        "Input should be greater than or equal to 1")
    assert engine.get(f"/review/captures/{MAX_INT}", derm).status_code == 404

    # The last line: a value no check covers, which PostgreSQL cannot hold, is a 422 too.
    nul = engine.get("/admin/audit", admin, params={"actor": "a\x00b"})
    if engine.settings.engine.database_url:
        assert (nul.status_code, nul.json()) == (422, {"detail": (
            "a value in the request cannot be stored by the engine's database (PostgreSQL text "
            "fields cannot contain NUL (0x00) bytes); nothing stored")})
    else:
        assert (nul.status_code, nul.json()) == (200, [])


def test_a_100_megapixel_image_is_refused_on_station_ingest(
    engine: EngineUnderTest, token: str, upload: tuple[dict[str, Any], bytes], tmp_path: Path
) -> None:
    metadata, _ = upload
    huge = _huge_png(tmp_path)
    with Image.open(io.BytesIO(huge)) as check:
        assert (check.format, check.size, len(huge) < 20_000) == ("PNG", (SIDE, SIDE), True)
    described = _with(metadata, "capture", image_format="png", width=SIDE, height=SIDE,
                      image_size=len(huge), image_sha256=hashlib.sha256(huge).hexdigest())
    before = _stored(engine.db)
    answer = _post(engine, token, described, huge)
    assert (answer.status_code, answer.json()) == (
        422, {"detail": f"capture {metadata['capture']['uid']}: {PIXEL_LIMIT}"})
    assert _stored(engine.db) == before


# -- provider classification (with consent) ----------------------------------------------------

def test_provider_classify_refuses_implausible_years_and_a_100_megapixel_image(
    engine: EngineUnderTest, admin: str, tmp_path: Path
) -> None:
    _, key = _provider_key(engine, admin, "Input Checks Inc")
    before = _stored(engine.db)
    huge = _huge_png(tmp_path)
    answer = _classify(engine, key, huge)
    assert (answer.status_code, answer.json()) == (422, {"detail": PIXEL_LIMIT})
    for field, value in [("access_time", "9999-12-31T23:59:59-05:00"),
                         ("capture_time", "0001-01-01T00:00:00+09:00")]:
        dated = _classify(engine, key, huge, **{field: value})
        assert (dated.status_code, dated.json()) == (422, {"detail": (
            f"invalid classify request: {field}: Value error, {field} must lie between the "
            f"years 1900 and 2200, got {value}; nothing stored")})
    assert _stored(engine.db) == before


# -- the engine's last line and the shared checks ----------------------------------------------

def _request() -> Request:
    return Request({"type": "http", "method": "POST", "path": "/api/v1/captures",
                    "headers": [], "query_string": b""})


def test_a_database_range_error_that_slips_through_is_a_422() -> None:
    sqlite_overflow = OverflowError("Python int too large to convert to SQLite INTEGER")
    answer = asyncio.run(out_of_range_response(_request(), sqlite_overflow))
    assert (answer.status_code, json.loads(bytes(answer.body))) == (422, {"detail": (
        "a value in the request cannot be stored by the engine's database (Python int too large "
        "to convert to SQLite INTEGER); nothing stored")})
    date_overflow = StatementError("bind failed", "INSERT", {}, OverflowError("date value out "
                                                                            "of range"))
    answer = asyncio.run(out_of_range_response(_request(), date_overflow))
    assert json.loads(bytes(answer.body)) == {"detail": (
        "a value in the request cannot be stored by the engine's database (date value out of "
        "range); nothing stored")}
    other = StatementError("bind failed", "INSERT", {}, KeyError("x"))
    with pytest.raises(StatementError):  # not a range problem: stays a server fault (500)
        asyncio.run(out_of_range_response(_request(), other))


def _refusal(call: Callable[[], object], kind: type[Exception] = ValueError) -> str:
    """The message of the ``kind`` of error ``call`` raises."""
    with pytest.raises(kind) as refused:
        call()
    return str(refused.value)


def test_header_inspection_refuses_before_decoding(tmp_path: Path) -> None:
    huge = _huge_png(tmp_path)
    assert _refusal(lambda: inspect_header(huge, ImageLimits()), ImageLimitError) == (
        "image is 10000x10000 pixels; at most 10000 per side and 40000000 pixels in all")
    roomy = inspect_header(huge, ImageLimits(max_pixels=SIDE * SIDE))
    assert (roomy.extension, roomy.width, roomy.height) == ("png", SIDE, SIDE)


# -- the station refuses the same input at entry -----------------------------------------------

@pytest.mark.parametrize("backend", BACKENDS)
def test_station_storage_refuses_control_characters_and_implausible_times(
    settings: Settings, backend: str, real_image_path: Path
) -> None:
    with open_backend(settings, backend) as database:
        _station_checks(database, real_image_path)


def _station_checks(database: Database, real_image_path: Path) -> None:
    store = StationStore(database)
    nurse = add_operator(database, "nurse", "staff")
    assert _refusal(lambda: store.create_patient("P\x00-1", actor_id=nurse)) == (
        "pseudonym must not contain control characters; found U+0000 at position 1")
    with database.transaction() as session:
        assert session.scalar(select(func.count()).select_from(StationPatient)) == 0

    patient = store.create_patient("P-0001", actor_id=nurse)
    visit = store.open_visit(patient.id, operator_id=nurse)
    image = real_image_path.read_bytes()
    when = dt.datetime(2025, 5, 1, 9, tzinfo=dt.UTC)

    def save(**changes: Any) -> Any:
        details: dict[str, Any] = {"band": "white", "body_site": "back",
                                   "device_id": "dermatoscope-1", "operator_id": nurse,
                                   "access_time": when, "capture_time": when, **changes}
        return store.save_capture(visit.id, image, **details)

    assert _refusal(lambda: save(body_site="back\tleft")) == (
        "body_site must not contain control characters; found U+0009 at position 4")
    assert _refusal(lambda: save(capture_time=dt.datetime(1, 1, 1, tzinfo=dt.UTC))) == (
        "capture_time must lie between the years 1900 and 2200, got 0001-01-01T00:00:00+00:00")
    assert _refusal(lambda: save(multispectral_group_id="g-1", multispectral_index=TOO_BIG)) == (
        f"multispectral_index must be between 0 and {MAX_INT}, got {TOO_BIG}")
    assert list(database.images.files()) == []

    capture = save()
    assert _refusal(lambda: store.add_operator_label(capture.id, "nv", author_id=nurse,
                                                     note="bell\x07")) == (
        "note must not contain control characters (line breaks and tabs are allowed); found "
        "U+0007 at position 4")
    label = store.add_operator_label(capture.id, "nv", author_id=nurse, note="line one\nline two")
    assert label.note == "line one\nline two"
