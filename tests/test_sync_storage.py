"""Station storage for sync: migration 0002, engine reviews as labels, upload documents."""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import func, inspect, select, text

from skinstation.auth import AuthService, InvalidCredentialsError
from skinstation.settings import Settings
from skinstation.storage import (
    EngineReview,
    NotFoundError,
    ReceivedReview,
    ReviewState,
    StationStore,
    SyncRecords,
    create_station_engine,
    current_revision,
    head_revision,
    init_database,
)
from skinstation.storage.database import alembic_config
from skinstation.storage.models import Base, Label, Operator
from tests.test_engine_helpers import add_capture, ham_images, make_station
from tests.test_storage_helpers import BACKENDS, add_operator, open_backend

REVIEWED_AT = dt.datetime(2025, 6, 2, 14, 30, tzinfo=dt.UTC)


def _review(engine_id: int, uid: str, code: str, supersedes: int | None = None) -> ReceivedReview:
    return ReceivedReview(engine_review_id=engine_id, capture_uid=uid, code=code,
                          note="dermoscopy reviewed", reviewer_username="drlee",
                          reviewer_name="Dr Lee", reviewed_at=REVIEWED_AT,
                          supersedes_engine_review_id=supersedes)


@pytest.mark.parametrize("backend", BACKENDS)
def test_migration_0002_adds_exactly_the_sync_tables(settings: Settings, backend: str) -> None:
    with open_backend(settings, backend) as database:
        assert current_revision(database.engine) == head_revision()
        assert {"engine_reviews", "sync_state"} <= set(inspect(database.engine).get_table_names())
        with database.engine.connect() as connection:
            context = MigrationContext.configure(connection, opts={"compare_type": True})
            assert compare_metadata(context, Base.metadata) == []


def test_upgrade_from_0001_keeps_station_data(settings: Settings) -> None:
    engine = create_station_engine(settings.database_url)
    settings.home.mkdir(parents=True, exist_ok=True)
    command.upgrade(alembic_config(engine), "0001")
    with engine.begin() as connection:
        connection.execute(text(
            "INSERT INTO operators (username, display_name, role, password_hash, disabled, "
            "failed_login_count, password_changed_at, created_at) VALUES "
            "('ann', 'Ann', 'staff', 'h', false, 0, '2025-01-01', '2025-01-01')"))
    engine.dispose()
    database = init_database(settings)
    assert current_revision(database.engine) == head_revision()
    with database.transaction() as session:
        assert session.scalars(select(Operator.username)).all() == ["ann"]
        assert session.scalar(select(func.count()).select_from(EngineReview)) == 0


def test_engine_reviews_become_final_labels_once(settings: Settings, ham_dir: Path) -> None:
    station = make_station(settings)
    capture = add_capture(station, ham_images(ham_dir, 1)[0], label="nv")
    records = SyncRecords(station.database)
    first = records.record_engine_review(_review(7, capture.uid, "mel"))
    assert first is not None and first.kind == "review" and first.code == "mel"
    assert records.record_engine_review(_review(7, capture.uid, "mel")) is None
    revised = records.record_engine_review(_review(9, capture.uid, "bcc", supersedes=7))
    assert revised is not None and revised.supersedes_id == first.id
    assert records.last_engine_review_id() == 9

    history = station.store.labels(capture.id, actor_id=station.operator_id)
    assert (history.original.code, [r.code for r in history.reviews], history.final.code) == (
        "nv", ["mel", "bcc"], "bcc")
    rows = station.store.history(actor_id=station.operator_id)
    assert (rows[0].final_label, rows[0].review_state) == ("bcc", ReviewState.REVIEWED)
    with station.database.transaction() as session:
        mirror = session.scalar(select(Operator).where(Operator.username == "@engine:drlee"))
        assert (mirror.role, mirror.disabled, mirror.display_name) == (
            "dermatologist", True, "Dr Lee")
        assert session.scalar(select(func.count()).select_from(Label)) == 3
    with pytest.raises(InvalidCredentialsError):
        AuthService(station.database).login("@engine:drlee", "!engine-reviewer-no-login")
    with pytest.raises(NotFoundError, match="no capture with uid nope on this station"):
        records.record_engine_review(_review(10, "nope", "mel"))
    with pytest.raises(ValueError, match="label code must be"):
        records.record_engine_review(_review(11, capture.uid, "Melanoma!"))


def test_upload_document_carries_station_labels_and_names_only_when_allowed(
    settings: Settings, ham_dir: Path
) -> None:
    named = settings.replace(store_patient_names=True)
    database = init_database(named)
    operator = add_operator(database, "nurse", "staff")
    store = StationStore(database, store_patient_names=True)
    patient = store.create_patient("P-7", actor_id=operator, name="Jane Roe")
    visit = store.open_visit(patient.id, operator_id=operator)
    image = ham_images(ham_dir, 1)[0].read_bytes()
    when = dt.datetime(2025, 5, 1, 9, 0, tzinfo=dt.UTC)
    capture = store.save_capture(visit.id, image, band="white", body_site="arm", device_id="d",
                                 operator_id=operator, access_time=when, capture_time=when)
    store.add_operator_label(capture.id, "bkl", author_id=operator, note="flat")
    records = SyncRecords(database)
    records.record_engine_review(_review(3, capture.uid, "mel"))

    plain = records.upload_of(capture.id)
    assert plain.image == image
    assert plain.metadata["patient"] == {"pseudonym": "P-7", "name": None}
    assert [(lb["kind"], lb["code"], lb["author"], lb["note"]) for lb in plain.metadata[
        "labels"]] == [("operator", "bkl", "nurse", "flat")]
    assert plain.metadata["capture"]["image_sha256"] == capture.image_sha256
    # the visit's UUID (migration 0004): never reused, even by a station restored from backup
    assert plain.metadata["session"]["ref"] == visit.uid
    assert re.fullmatch(r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}",
                        visit.uid or "")
    with_name = records.upload_of(capture.id, include_patient_name=True)
    assert with_name.metadata["patient"]["name"] == "Jane Roe"

    records.put("model.deployment", "4")
    records.put("model.deployment", "5")
    assert (records.get("model.deployment"), records.get("missing")) == ("5", None)
