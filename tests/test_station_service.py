"""The station's service layer end to end with real parts: SQLite file, model, simulator."""

import datetime as dt
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from skinstation.auth import PermissionDeniedError, Role
from skinstation.camera import SimulatedDermatoscope, SyntheticFrameSource
from skinstation.services.station import StationService, SyntheticFrameError
from skinstation.settings import Settings
from skinstation.storage import AuditAction, ReviewState

PASSWORD = "correct horse battery"


@pytest.fixture()
def station(settings, tiny_model):
    service = StationService(settings.replace(model_path=tiny_model))
    service.create_first_admin("admin", "Admin", PASSWORD)
    admin = service.login("admin", PASSWORD)
    service.create_operator(admin, "nurse", "Nurse", Role.STAFF, PASSWORD)
    service.create_operator(admin, "derm", "Dr Derm", Role.DERMATOLOGIST, PASSWORD)
    service.logout(admin)
    return service


def test_capture_classify_save_label_review_history(station, ham_dir):
    nurse = station.login("nurse", PASSWORD)
    patient = station.find_or_create_patient(nurse, "P-100")
    assert station.find_or_create_patient(nurse, "P-100").id == patient.id
    visit = station.start_visit(nurse, patient.id)
    with SimulatedDermatoscope(ham_dir / "images") as source:
        frame = source.read()
    analysis = station.analyse(frame.pixels, classify_if_poor=True)
    prediction = analysis.prediction
    assert prediction is not None and prediction.model_version == "tiny-test-model"
    direct = station.classify(frame.pixels)
    assert direct.class_probs == prediction.class_probs
    saved = station.save_capture(nurse, visit.id, frame, band="white", body_site="back",
                                 access_time=dt.datetime.now(dt.UTC), prediction=prediction)
    assert saved.prediction_id is not None
    station.label(nurse, saved.capture.id, "nv", note="looks like a mole")
    with pytest.raises(ValueError, match="unknown diagnosis code 'mole'"):
        station.label(nurse, saved.capture.id, "mole")
    with pytest.raises(PermissionDeniedError):
        station.review(nurse, saved.capture.id, "mel")

    rows = station.history(nurse, patient_id=patient.id)
    assert [r.capture_id for r in rows] == [saved.capture.id]
    assert rows[0].decision == prediction.decision
    assert rows[0].original_label == "nv" and rows[0].review_state == ReviewState.UNREVIEWED

    derm = station.login("derm", PASSWORD)
    station.review(derm, saved.capture.id, "mel", note="irregular network")
    detail = station.capture_detail(derm, saved.capture.id)
    assert detail.labels.final.code == "mel" and detail.labels.original.code == "nv"
    np.testing.assert_array_equal(detail.pixels, frame.pixels)  # stored losslessly
    assert detail.prediction["decision"] == prediction.decision
    assert detail.prediction["class_probabilities"] == pytest.approx(prediction.class_probs)
    reviewed = station.history(derm, review_state=ReviewState.REVIEWED)
    assert [r.final_label for r in reviewed] == ["mel"]


def test_synthetic_frames_are_never_saved_as_patient_images(station):
    nurse = station.login("nurse", PASSWORD)
    visit = station.start_visit(nurse, station.find_or_create_patient(nurse, "P-1").id)
    with SyntheticFrameSource(640, 480) as source:
        frame = source.read()
    with pytest.raises(SyntheticFrameError, match="not a patient image"):
        station.save_capture(nurse, visit.id, frame, band="white", body_site="arm",
                             access_time=dt.datetime.now(dt.UTC))
    assert station.history(nurse) == []


def test_admin_is_not_clinical_and_staff_cannot_review(station):
    admin = station.login("admin", PASSWORD)
    with pytest.raises(PermissionDeniedError):
        station.find_or_create_patient(admin, "P-2")
    nurse = station.login("nurse", PASSWORD)
    with pytest.raises(PermissionDeniedError):
        station.review_queue(nurse)


def test_cli_demo_runs_the_whole_flow(tmp_path, tiny_model, ham_dir):
    env = {**os.environ, "DEMO_PASSWORD": PASSWORD}
    result = subprocess.run(
        [sys.executable, "-m", "skinstation.cli", "demo", "--home", str(tmp_path / "home"),
         "--images", str(ham_dir / "images"), "--model", str(tiny_model),
         "--password-env", "DEMO_PASSWORD"],
        capture_output=True, text=True, env=env, timeout=300,
        cwd=Path(__file__).resolve().parent.parent)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    for step in ("[1] database", "[2] logged in as Demo nurse (staff)", "[3] visit",
                 "[4] frame source: simulator:", "band White", "band Cross-polarised",
                 "classified in", "[6] saved capture", "[7] operator label", "[8] history:",
                 "[9] visit closed"):
        assert step in out, step
    assert out.count("[6] saved capture") == 2
    assert PASSWORD not in out and PASSWORD not in result.stderr
    history = [line for line in out.splitlines() if line.strip().startswith("capture ")]
    assert len(history) == 2
    assert {"band white", "band cross_polarised"} == {
        " ".join(line.split()[4:6]) for line in history}


def test_ui_helpers_find_thumbnails_explain_names_and_settings(station, ham_dir):
    nurse = station.login("nurse", PASSWORD)
    assert station.find_patient(nurse, "P-404") is None  # looking up never creates
    patient = station.find_or_create_patient(nurse, "P-300")
    assert station.find_patient(nurse, "P-300").id == patient.id
    visit = station.start_visit(nurse, patient.id)
    with SimulatedDermatoscope(ham_dir / "images", size=(640, 480)) as source:
        frame = source.read()
    saved = station.save_capture(nurse, visit.id, frame, band="white", body_site="back",
                                 access_time=dt.datetime.now(dt.UTC))
    thumbs = station.thumbnails(nurse, [saved.capture.id], max_side=96)
    assert thumbs[saved.capture.id].shape == (72, 96, 3)
    explanation = station.explain(frame.pixels)
    assert explanation.heatmap.shape == explanation.prepared.shape[:2]
    assert explanation.overlay().dtype == np.uint8
    names = station.operator_names(nurse)
    assert names[nurse.operator_id] == "Nurse" and "Dr Derm" in names.values()

    admin = station.login("admin", PASSWORD)
    with pytest.raises(PermissionDeniedError):
        station.find_patient(admin, "P-300")
    assert [a.username for a in station.list_operators(admin)] == ["admin", "derm", "nurse"]
    with pytest.raises(PermissionDeniedError):
        station.list_operators(nurse)
    with pytest.raises(PermissionDeniedError):
        station.change_settings(nurse, {"language": "ko"})
    updated = station.change_settings(admin, {"language": "ko", "idle_lock_minutes": 2.5,
                                              "camera": {"source": "simulator"},
                                              "quality": {"min_focus": 3.5}})
    assert station.settings is updated and updated.language == "ko"
    assert updated.camera.source == "simulator" and updated.camera.width == 1280
    assert updated.quality.min_focus == 3.5 and updated.quality.min_brightness == 60.0
    reloaded = Settings.load(env={}, config_file=updated.home / "settings.toml")
    assert (reloaded.language, reloaded.idle_lock_minutes) == ("ko", 2.5)
    assert reloaded.camera.source == "simulator" and reloaded.quality.min_focus == 3.5
    station.change_settings(admin, {"language": "en"})
    assert Settings.load(env={}, config_file=updated.home / "settings.toml").camera.source \
        == "simulator"  # earlier changes are kept in the file
    with pytest.raises(ValueError, match="unknown setting"):
        station.change_settings(admin, {"no_such_setting": 1})
    changed = station.store.audit_log(actor_id=admin.operator_id,
                                      action=AuditAction.SETTINGS_CHANGED)
    assert [e.detail["changes"] for e in changed] == [
        {"language": "ko", "idle_lock_minutes": 2.5, "camera": {"source": "simulator"},
         "quality": {"min_focus": 3.5}},
        {"language": "en"},
    ]
    assert {e.actor_id for e in changed} == {admin.operator_id}
    assert {e.entity_type for e in changed} == {"settings"}
