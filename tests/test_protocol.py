"""The wire protocol: one set of classes on both sides, byte-compatible with release 1's uploads."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from skinstation.protocol.uploads import CaptureMetadata, CaptureReceipt
from skinstation.settings import Settings
from skinstation.storage import Database, SyncRecords
from skinstation.storage.models import Capture, EngineReview, Label, Operator, Patient, Visit
from skinstation.storage.models import Prediction as PredictionRow
from tests.test_engine_helpers import (
    ADMIN_PASSWORD,
    EngineUnderTest,
    add_capture,
    ham_images,
    make_station,
    make_tls,
    start_engine,
)


def release_1_upload_document(database: Database, capture_id: int,
                              include_patient_name: bool = False) -> dict[str, Any]:
    """The upload document exactly as the station built it before ``skinstation.protocol``.

    A frozen copy of ``SyncRecords.upload_of``'s dict builder at commit 1d811a0 (plain dicts,
    ``isoformat()`` times), kept here as the reference the wire format must stay equal to.
    """
    def iso(value: Any) -> str | None:
        return None if value is None else value.isoformat()

    with database.transaction() as session:
        capture = session.get(Capture, capture_id)
        assert capture is not None
        visit = session.get(Visit, capture.visit_id)
        assert visit is not None
        patient = session.get(Patient, visit.patient_id)
        assert patient is not None
        usernames = {row.id: row.username for row in session.execute(
            select(Operator.id, Operator.username))}
        predictions = session.scalars(select(PredictionRow).where(
            PredictionRow.capture_id == capture_id).order_by(PredictionRow.id))
        labels = session.scalars(select(Label).where(
            Label.capture_id == capture_id,
            Label.id.not_in(select(EngineReview.label_id))).order_by(Label.id))
        return {
            "capture": {
                "uid": capture.uid, "band": capture.band, "body_site": capture.body_site,
                "device_id": capture.device_id,
                "operator": usernames.get(capture.operator_id, str(capture.operator_id)),
                "access_time": iso(capture.access_time),
                "capture_time": iso(capture.capture_time), "saved_at": iso(capture.saved_at),
                "image_sha256": capture.image_sha256, "image_size": capture.image_size,
                "image_format": capture.image_format, "width": capture.width,
                "height": capture.height,
                "multispectral_group_id": capture.multispectral_group_id,
                "multispectral_index": capture.multispectral_index,
            },
            "session": {
                # same field and type as release 1; its value is the visit's UUID since
                # station migration 0004 (str(id) for visits made before it)
                "ref": visit.uid or str(visit.id),
                "operator": usernames.get(visit.operator_id, str(visit.operator_id)),
                "opened_at": iso(visit.opened_at), "closed_at": iso(visit.closed_at),
            },
            "patient": {"pseudonym": patient.pseudonym,
                        "name": patient.name if include_patient_name else None},
            "predictions": [
                {"model_version": p.model_version, "class_probabilities": p.class_probabilities,
                 "group_probabilities": p.group_probabilities, "decision": p.decision,
                 "referral": p.referral, "created_at": iso(p.created_at)}
                for p in predictions
            ],
            "labels": [
                {"kind": label.kind, "code": label.code, "note": label.note,
                 "author": usernames.get(label.author_id, str(label.author_id)),
                 "created_at": iso(label.created_at)}
                for label in labels
            ],
        }


@pytest.fixture(scope="module")
def engine(tmp_path_factory: pytest.TempPathFactory, data_dir: Path) -> Iterator[EngineUnderTest]:
    folder = tmp_path_factory.mktemp("engine-protocol")
    running = start_engine(folder, data_dir, make_tls(folder / "tls"),
                           database_url=f"sqlite:///{folder / 'engine.db'}", workers=1)
    try:
        yield running
    finally:
        running.server.stop()
        running.db.dispose()


def test_upload_built_from_the_protocol_is_byte_identical_to_release_1(
    tmp_path: Path, ham_dir: Path, settings: Settings
) -> None:
    station = make_station(settings.replace(home=tmp_path / "station"))
    images = ham_images(ham_dir, 2, skip=900)
    first = add_capture(station, images[0], decision="skin_cancer", referral=True, label="mel")
    second = add_capture(station, images[1], decision="indeterminate", label=None, minutes=3)
    records = SyncRecords(station.database)
    for capture_id in (first.id, second.id):
        for with_name in (False, True):
            upload = records.upload_of(capture_id, include_patient_name=with_name)
            legacy = release_1_upload_document(station.database, capture_id, with_name)
            assert json.dumps(upload.metadata) == json.dumps(legacy)
            assert isinstance(upload.document, CaptureMetadata)
            assert CaptureMetadata.model_validate(legacy) == upload.document


def test_engine_stores_a_release_1_upload_with_201(
    engine: EngineUnderTest, tmp_path: Path, ham_dir: Path, settings: Settings
) -> None:
    station = make_station(settings.replace(home=tmp_path / "station"))
    capture = add_capture(station, ham_images(ham_dir, 1, skip=905)[0], decision="benign")
    legacy = release_1_upload_document(station.database, capture.id)
    image = SyncRecords(station.database).upload_of(capture.id).image
    admin = engine.login("admin", ADMIN_PASSWORD)
    code = engine.enrollment_code(admin, "Clinic Protocol")
    token = engine.post("/enroll", json={"code": code, "station_ref": "proto-1"}).json()["token"]
    files = {"metadata": (None, json.dumps(legacy), "application/json"),
             "image": ("capture.jpg", image, "image/jpeg")}
    response = engine.post("/captures", token, files=files)
    assert response.status_code == 201, response.text
    receipt = CaptureReceipt.model_validate_json(response.content)
    assert (receipt.uid, receipt.image_sha256, receipt.duplicate) == (
        legacy["capture"]["uid"], legacy["capture"]["image_sha256"], False)
    again = engine.post("/captures", token, files=files)
    assert again.status_code == 200 and again.json()["duplicate"] is True


def test_a_local_record_the_engine_would_refuse_is_refused_on_the_station(
    tmp_path: Path, ham_dir: Path, settings: Settings
) -> None:
    station = make_station(settings.replace(home=tmp_path / "station"))
    capture = add_capture(station, ham_images(ham_dir, 1, skip=906)[0])
    with station.database.transaction() as session:
        row = session.get(Capture, capture.id)
        assert row is not None
        row.body_site = "x" * 65  # longer than the protocol's 64 (an old or damaged record)
    with pytest.raises(ValueError, match="body_site"):
        SyncRecords(station.database).upload_of(capture.id)
