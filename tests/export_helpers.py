"""Captures for the export tests, made through the real StationService on HAM10000 frames."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from sqlalchemy import select

from skinstation.auth import Role
from skinstation.camera import SimulatedDermatoscope
from skinstation.inference.preprocessing import decode_image
from skinstation.interop.records import ExportCapture
from skinstation.services.station import SavedCapture, StationService
from skinstation.settings import Settings
from skinstation.storage import AuditEvent

PASSWORD = "correct horse battery"
PSEUDONYM = "P-20"
NAME = "Hong Gildong"


@dataclass
class Made:
    """A station with one patient, one visit and its captures."""

    service: StationService
    captures: list[SavedCapture]
    operator_id: int


def make_captures(settings: Settings, ham_dir: Path, *, bands: tuple[str, ...] = ("white",),
                  body_site: str = "back", name: str | None = None) -> Made:
    """Register a patient, open a visit and save one classified frame per band.

    Several bands are saved as one multispectral shot; the white frame (or the first) is
    classified by the real model.
    """
    service = StationService(settings)
    service.create_first_admin("admin", "Admin", PASSWORD)
    admin = service.login("admin", PASSWORD)
    service.create_operator(admin, "nurse", "Nurse", Role.STAFF, PASSWORD)
    service.logout(admin)
    nurse = service.login("nurse", PASSWORD)
    patient = service.create_patient(nurse, PSEUDONYM, name=name)
    visit = service.start_visit(nurse, patient.id)
    with SimulatedDermatoscope(ham_dir / "images") as source:
        frames = [source.read() for _ in bands]
    access = dt.datetime.now(dt.UTC)
    prediction = service.analyse(frames[0].pixels, classify_if_poor=True).prediction
    if len(bands) == 1:
        saved = [service.save_capture(nurse, visit.id, frames[0], band=bands[0],
                                      body_site=body_site, access_time=access,
                                      prediction=prediction)]
    else:
        saved = service.save_multispectral(nurse, visit.id, list(zip(bands, frames, strict=True)),
                                           body_site=body_site, access_time=access,
                                           classify_band=bands[0], prediction=prediction)
    return Made(service, saved, nurse.operator_id)


def stored_pixels(service: StationService, capture_id: int):
    capture = service.store.get_capture(capture_id, actor_id=1)
    return decode_image(service.database.images.read(capture.image_ref, capture.image_sha256))


def audit_rows(service: StationService, action: str) -> list[tuple[int | None, str | None, dict]]:
    with service.database.transaction() as db:
        return [(row.actor_id, row.entity_id, dict(row.detail)) for row in
                db.scalars(select(AuditEvent).where(AuditEvent.action == action)
                           .order_by(AuditEvent.id))]


def export_record(**changes: object) -> ExportCapture:
    """A plain :class:`ExportCapture` (8x6 RGB pixels, no station) with ``changes`` applied."""
    moment = dt.datetime(2024, 5, 6, 7, 8, 9, tzinfo=dt.UTC)
    fields: dict[str, object] = dict(
        capture_id=1, capture_uid="0c7d2c55-9f5e-4b8e-8d2f-6f9e3b0a1c2d", station_id="ST-1",
        device_id="sim-dermatoscope", band="white", body_site="back", capture_time=moment,
        pixels=np.zeros((6, 8, 3), dtype=np.uint8), image=b"", image_media_type="image/png",
        lossy=False, patient_pseudonym=PSEUDONYM, patient_name=None,
        visit_uid="5e0f8a7b-2f1c-4d3e-9a8b-7c6d5e4f3a2b", visit_number=1,
        visit_opened_at=moment, multispectral_group_id=None, multispectral_index=None,
        prediction=None, software_version="test")
    fields.update(changes)
    return ExportCapture(**fields)  # type: ignore[arg-type]
