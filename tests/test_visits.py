"""Visits: per-patient numbers, automatic closing of old visits, captures never in a closed one."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
from sqlalchemy import select

from skinstation.settings import Settings
from skinstation.storage import (
    AuditAction,
    AuditEvent,
    Capture,
    Database,
    StationStore,
    Visit,
    VisitClosedError,
)
from tests.test_storage_helpers import BACKENDS, FakeClock, add_operator, open_backend

T0 = datetime(2025, 3, 14, 10, 0, tzinfo=UTC)


@dataclass
class Station:
    database: Database
    store: StationStore
    clock: FakeClock
    nurse: int

    def patient(self, pseudonym: str) -> int:
        return self.store.create_patient(pseudonym, actor_id=self.nurse).id

    def capture(self, visit_id: int, **kwargs: object) -> Capture:
        pixels = np.random.default_rng(0).integers(0, 256, (16, 24, 3), dtype=np.uint8)
        values: dict[str, object] = {
            "band": "white", "body_site": "back", "device_id": "cam-1",
            "operator_id": self.nurse, "access_time": self.clock(),
            "capture_time": self.clock(),
        }
        values.update(kwargs)
        return self.store.save_capture(visit_id, pixels, **values)  # type: ignore[arg-type]

    def visit(self, visit_id: int) -> Visit:
        return self.store.get_visit(visit_id)

    def closings(self) -> list[tuple[str | None, dict[str, object]]]:
        with self.database.transaction() as session:
            rows = session.scalars(select(AuditEvent)
                                   .where(AuditEvent.action == AuditAction.VISIT_CLOSED.value)
                                   .order_by(AuditEvent.id))
            return [(row.entity_id, dict(row.detail or {})) for row in rows]


def _station(settings: Settings, backend: str, hours: float | None = None) -> Iterator[Station]:
    if hours is not None:
        settings = settings.replace(visit_max_open_hours=hours)
    with open_backend(settings, backend) as database:
        clock = FakeClock(T0)
        store = StationStore(database, clock=clock)
        yield Station(database, store, clock, add_operator(database, "nurse", "staff"))


@pytest.fixture(params=BACKENDS)
def station(request: pytest.FixtureRequest, settings: Settings) -> Iterator[Station]:
    yield from _station(settings, request.param)


def test_visit_numbers_count_each_patients_own_visits(station: Station) -> None:
    first = station.patient("P-0001")
    numbers = []
    for hour in range(3):
        station.clock.now = T0 + timedelta(hours=hour)
        numbers.append(station.store.open_visit(first, operator_id=station.nurse).number)
    assert numbers == [1, 2, 3]
    newcomer = station.patient("P-0002")
    visit = station.store.open_visit(newcomer, operator_id=station.nurse)
    assert visit.id == 4 and visit.number == 1  # not "visit 4"
    assert station.visit(visit.id).number == 1
    capture = station.capture(visit.id)
    rows = station.store.history(actor_id=station.nurse, patient_id=newcomer)
    assert [(r.capture_id, r.visit_id, r.visit_number) for r in rows] == [
        (capture.id, visit.id, 1)]


def test_a_new_visit_of_the_same_patient_closes_the_open_one(station: Station) -> None:
    patient, other = station.patient("P-0001"), station.patient("P-0002")
    old = station.store.open_visit(patient, operator_id=station.nurse)
    elsewhere = station.store.open_visit(other, operator_id=station.nurse)
    station.clock.advance(minutes=30)
    new = station.store.open_visit(patient, operator_id=station.nurse)
    assert station.visit(old.id).closed_at == station.clock()
    assert station.visit(new.id).closed_at is None
    assert station.visit(elsewhere.id).closed_at is None  # another patient's stays open
    assert station.closings() == [(str(old.id), {
        "automatic": True, "reason": "new_visit", "successor": new.id,
        "opened_at": T0.isoformat()})]
    # a capture aimed at the replaced visit goes to the patient's new one
    assert station.capture(old.id).visit_id == new.id


def test_a_stale_visit_is_closed_on_next_use_and_the_capture_goes_to_a_new_visit(
        station: Station) -> None:
    patient = station.patient("P-0001")
    visit = station.store.open_visit(patient, operator_id=station.nurse)
    assert station.capture(visit.id).visit_id == visit.id
    station.clock.advance(hours=11, minutes=59)
    assert station.capture(visit.id).visit_id == visit.id  # within the 12 hours
    station.clock.advance(hours=1)
    capture = station.capture(visit.id)
    assert capture.visit_id != visit.id
    old, new = station.visit(visit.id), station.visit(capture.visit_id)
    assert old.closed_at == station.clock()
    assert (new.patient_id, new.closed_at, new.number, new.opened_at) == (
        patient, None, 2, station.clock())
    assert station.closings() == [(str(visit.id), {
        "automatic": True, "reason": "stale", "successor": new.id,
        "opened_at": T0.isoformat()})]
    # the station still names the old visit: its next captures (a whole sequence) follow
    frames = [station.capture(visit.id, band=band, multispectral_group_id="g-1",
                              multispectral_index=index)
              for index, band in enumerate(("white", "uv_365", "nir_850"))]
    assert {frame.visit_id for frame in frames} == {new.id}
    with station.database.transaction() as session:
        in_old = session.scalars(select(Capture.id).where(Capture.visit_id == visit.id))
        assert len(list(in_old)) == 2  # nothing was added to the closed visit


def test_a_visit_closed_by_hand_refuses_captures(station: Station) -> None:
    patient = station.patient("P-0001")
    visit = station.store.open_visit(patient, operator_id=station.nurse)
    station.store.close_visit(visit.id, operator_id=station.nurse)
    with pytest.raises(VisitClosedError, match=f"visit {visit.id} is closed"):
        station.capture(visit.id)
    assert station.closings() == [(str(visit.id), {})]


def test_opening_a_visit_closes_every_stale_visit(station: Station) -> None:
    first, second = station.patient("P-0001"), station.patient("P-0002")
    stale = station.store.open_visit(first, operator_id=station.nurse)
    station.clock.advance(hours=10)
    recent = station.store.open_visit(second, operator_id=station.nurse)
    station.clock.advance(hours=3)
    third = station.store.open_visit(station.patient("P-0003"), operator_id=station.nurse)
    assert station.visit(stale.id).closed_at == station.clock()
    assert station.visit(recent.id).closed_at is None
    assert station.closings() == [(str(stale.id), {
        "automatic": True, "reason": "stale", "successor": None,
        "opened_at": T0.isoformat()})]
    assert station.store.close_stale_visits(actor_id=None) == []
    station.clock.advance(hours=12, minutes=30)
    assert station.store.close_stale_visits(actor_id=None) == [recent.id, third.id]


@pytest.mark.parametrize("backend", ["sqlite"])
def test_zero_hours_never_closes_visits_automatically(settings: Settings, backend: str) -> None:
    for station in _station(settings, backend, hours=0):
        visit = station.store.open_visit(station.patient("P-0001"), operator_id=station.nurse)
        station.clock.advance(days=30)
        assert station.capture(visit.id).visit_id == visit.id
        assert station.store.close_stale_visits(actor_id=station.nurse) == []
