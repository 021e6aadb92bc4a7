"""History: the selected capture's referral report (PDF), DICOM file and FHIR bundle, written
from the window through the station's services and read back (pypdf, pydicom, JSON)."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import numpy as np
from pydicom import dcmread
from pypdf import PdfReader
from PySide6.QtCore import Qt
from sqlalchemy import select

from skinstation.services.models import ModelManager
from skinstation.services.station import StationService
from skinstation.settings import Settings
from skinstation.storage import AuditEvent
from tests.ui.helpers import PASSWORD, TIMEOUT, log_in

PSEUDONYM = "P-EXPORT-7"
PROBS = {"akiec": 0.05, "bcc": 0.1, "bkl": 0.05, "df": 0.05, "mel": 0.5, "nv": 0.2, "vasc": 0.05}
GROUPS = {"skin_cancer": 0.6, "other_disease": 0.1, "benign": 0.3}


def _seed(station: Settings, models: ModelManager) -> int:
    """One capture of the back with a stored "suspected skin cancer, referred" prediction."""
    service = StationService(station, models=models)
    nurse = service.login("nurse", PASSWORD)
    patient = service.find_or_create_patient(nurse, PSEUDONYM)
    visit = service.start_visit(nurse, patient.id).id
    when = dt.datetime.now(dt.UTC) - dt.timedelta(hours=1)
    pixels = np.random.default_rng(7).integers(0, 256, (48, 64, 3), dtype=np.uint8)
    capture = service.store.save_capture(
        visit, pixels, band="white", body_site="back", device_id="cam-1",
        operator_id=nurse.operator_id, access_time=when, capture_time=when)
    service.store.save_prediction(capture.id, model_version="m-1", class_probabilities=PROBS,
                                  group_probabilities=GROUPS, decision="skin_cancer",
                                  referral=True)
    service.logout(nurse)
    service.database.dispose()
    return capture.id


def _export(qtbot, history, button) -> str:
    """Press an export button; wait for the outcome; returns the message shown."""
    history.message.clear_message()
    qtbot.mouseClick(button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: history.message.kind in ("success", "error"), timeout=TIMEOUT)
    return history.message.message


def _audit(service: StationService, action: str) -> list[tuple[int | None, str | None, dict]]:
    with service.database.transaction() as db:
        return [(row.actor_id, row.entity_id, dict(row.detail)) for row in db.scalars(
            select(AuditEvent).where(AuditEvent.action == action).order_by(AuditEvent.id))]


def test_report_dicom_and_fhir_are_written_from_the_history(
        qtbot, make_window, station, shared_models, tmp_path: Path) -> None:
    capture_id = _seed(station, shared_models)
    window = make_window(station)
    log_in(qtbot, window, "nurse")
    window.show_screen("history")
    history = window.screens["history"]
    history.patient_filter.setText(PSEUDONYM)
    qtbot.mouseClick(history.search_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: len(history.rows) == 1, timeout=TIMEOUT)
    bar = history.export_bar
    buttons = (bar.report_button, bar.dicom_button, bar.fhir_button)
    assert [b.text() for b in buttons] == ["Report (PDF)", "Export DICOM", "Export FHIR"]
    assert not any(b.isEnabled() for b in buttons)  # nothing selected
    history.select_ids([capture_id])
    assert all(b.isEnabled() for b in buttons)

    asked: list[tuple[str, Path]] = []
    chosen = {"report": tmp_path / "letters" / "referral.pdf", "dicom": tmp_path / "pacs",
              "fhir": tmp_path / "fhir" / "bundle.json"}

    for folder in (tmp_path / "letters", tmp_path / "pacs", tmp_path / "fhir"):
        folder.mkdir()

    def pick(kind: str, suggested: Path) -> Path:
        asked.append((kind, suggested))
        return chosen[kind]

    bar.pick_destination = pick
    uid = history.rows[0].capture_uid

    # the referral report: the decision, the site and the patient's pseudonym
    pdf = chosen["report"]
    assert _export(qtbot, history, bar.report_button) == f"Report written to {pdf}"
    assert bar.last_path == pdf
    assert asked[-1] == ("report", Path(station.home) / "reports" / f"capture-{uid}.pdf")
    words = " ".join("\n".join(page.extract_text() for page in PdfReader(pdf).pages).split())
    assert "Triage result Suspected skin cancer" in words
    assert "Body map: Back" in words
    assert PSEUDONYM in words

    # the DICOM file in the chosen folder
    message = _export(qtbot, history, bar.dicom_button)
    path = bar.last_path
    assert message == f"DICOM file written to {path}"
    assert path.parent == chosen["dicom"] and path.suffix == ".dcm"
    assert asked[-1] == ("dicom", Path(station.home) / "exports")
    ds = dcmread(path)
    assert ds.PatientID == PSEUDONYM
    assert ds.AnatomicRegionSequence[0].CodeMeaning == "Back"
    assert "decision skin_cancer" in ds.ImageComments

    # the FHIR bundle
    bundle = chosen["fhir"]
    assert _export(qtbot, history, bar.fhir_button) == f"FHIR bundle written to {bundle}"
    document = json.loads(bundle.read_text(encoding="utf-8"))
    resources = [entry["resource"] for entry in document["entry"]]
    patient = next(r for r in resources if r["resourceType"] == "Patient")
    assert patient["identifier"] == [{"system": "urn:skinstation:pseudonym", "value": PSEUDONYM}]
    codes = {r["valueCodeableConcept"]["coding"][0]["code"] for r in resources
             if r["resourceType"] == "Observation" and "valueCodeableConcept" in r}
    assert codes == {"skin_cancer"}

    # each write is audited as the nurse's
    service, nurse = window.ctx.require_service(), window.ctx.require_session().operator_id
    assert _audit(service, "capture.report") == [
        (nurse, str(capture_id), {"language": "en", "names": False, "heatmap": False})]
    assert [(actor, entity, detail["format"]) for actor, entity, detail in
            _audit(service, "capture.exported")] == [
        (nurse, str(capture_id), "dicom"), (nurse, str(capture_id), "fhir")]

    # a destination that cannot be written: said clearly, nothing written, buttons back
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("x")
    chosen["report"] = blocker / "referral.pdf"
    message = _export(qtbot, history, bar.report_button)
    assert history.message.kind == "error"
    assert message.startswith("Nothing was written: ")
    assert bar.last_path == bundle and all(b.isEnabled() for b in buttons)

    # cancelling the dialog writes nothing and says nothing
    history.message.clear_message()
    bar.pick_destination = lambda kind, suggested: None
    qtbot.mouseClick(bar.fhir_button, Qt.MouseButton.LeftButton)
    assert history.message.kind == "" and bar.last_path == bundle
    assert len(_audit(service, "capture.exported")) == 2

    # two lines chosen: no single capture to write
    history.table.clearSelection()
    assert not any(b.isEnabled() for b in buttons)
