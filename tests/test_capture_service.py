"""The Qt-free capture use case: analyse, then save exactly what was shown (issue 19, 2 and 7).

Real parts: a station SQLite file, the tiny model, the simulated dermatoscope on HAM10000.
"""

import dataclasses
import datetime as dt

import pytest
from sqlalchemy import select

from skinstation.auth import Role
from skinstation.camera import SimulatedDermatoscope
from skinstation.services import capture as capture_case
from skinstation.services.station import StationService
from skinstation.storage import Capture
from skinstation.storage.models import Label, Prediction
from skinstation.storage.sync_records import SyncRecords

PASSWORD = "correct horse battery"


def make_station(settings) -> StationService:
    service = StationService(settings)
    service.create_first_admin("admin", "Admin", PASSWORD)
    admin = service.login("admin", PASSWORD)
    service.create_operator(admin, "nurse", "Nurse", Role.STAFF, PASSWORD)
    service.logout(admin)
    return service


@pytest.fixture()
def station(settings, tiny_model):
    return make_station(settings.replace(model_path=tiny_model))


@pytest.fixture()
def strict_station(settings, tiny_model):
    """Quality thresholds no frame meets: every capture fails the quality check."""
    quality = dataclasses.replace(settings.quality, min_focus=1e9)
    return make_station(settings.replace(model_path=tiny_model, quality=quality))


def read_frames(ham_dir, count):
    with SimulatedDermatoscope(ham_dir / "images") as source:
        return [source.read() for _ in range(count)]


def label_rows(service):
    with service.database.transaction() as db:
        return [(r.capture_id, r.kind, r.code, r.note, r.author_id)
                for r in db.scalars(select(Label).order_by(Label.id))]


def prediction_rows(service):
    with service.database.transaction() as db:
        return [(r.capture_id, r.class_probabilities, r.group_probabilities, r.decision)
                for r in db.scalars(select(Prediction).order_by(Prediction.id))]


def capture_count(service):
    with service.database.transaction() as db:
        return len(db.scalars(select(Capture.id)).all())


def open_visit(service):
    nurse = service.login("nurse", PASSWORD)
    visit = service.start_visit(nurse, service.find_or_create_patient(nurse, "P-19").id)
    return nurse, visit.id


def save(service, session, visit_id, analysis, frame, **kwargs):
    return capture_case.save(service, session, visit_id, analysis, frame=frame, band="white",
                             body_site="back", access_time=dt.datetime.now(dt.UTC), **kwargs)


# -- point 2: a note is always stored ---------------------------------------------------------


def test_note_without_diagnosis_is_stored_and_named(station, ham_dir):
    nurse, visit_id = open_visit(station)
    (frame,) = read_frames(ham_dir, 1)
    analysis = capture_case.analyse(station, frame.pixels, force=True)
    saved = save(station, nurse, visit_id, analysis, frame, diagnosis=None,
                 note="  itchy for two weeks ")
    capture_id = saved.capture_ids[0]
    assert saved.capture_ids == (capture_id,) and saved.main_capture_id == capture_id
    assert saved.diagnosis is None and saved.note == "itchy for two weeks"
    assert saved.parts == ("capture", "prediction", "note")
    assert label_rows(station) == [
        (capture_id, "operator", "", "itchy for two weeks", nurse.operator_id)]
    assert saved.label_id is not None
    history = station.store.labels(capture_id, actor_id=nurse.operator_id)
    assert history.original.note == "itchy for two weeks" and history.original.code == ""
    assert history.final is None  # a note is not a diagnosis
    # the capture still syncs: the note-only label stays at the station
    upload = SyncRecords(station.database).upload_of(capture_id)
    assert upload.document.labels == []
    assert len(upload.document.predictions) == 1


def test_diagnosis_with_note_and_nothing_without_either(station, ham_dir):
    nurse, visit_id = open_visit(station)
    first, second = read_frames(ham_dir, 2)
    labelled = save(station, nurse, visit_id, capture_case.analyse(station, first.pixels,
                                                                   force=True),
                    first, diagnosis="nv", note="flat brown macule")
    plain = save(station, nurse, visit_id, capture_case.analyse(station, second.pixels,
                                                                force=True),
                 second, diagnosis="", note="   ")
    assert labelled.parts == ("capture", "prediction", "diagnosis", "note")
    assert plain.parts == ("capture", "prediction")
    assert plain.label_id is None and plain.note is None and plain.diagnosis is None
    assert label_rows(station) == [
        (labelled.main_capture_id, "operator", "nv", "flat brown macule", nurse.operator_id)]


def test_a_bad_diagnosis_stores_nothing(station, ham_dir):
    nurse, visit_id = open_visit(station)
    (frame,) = read_frames(ham_dir, 1)
    analysis = capture_case.analyse(station, frame.pixels, force=True)
    with pytest.raises(ValueError, match="unknown diagnosis code 'mole'"):
        save(station, nurse, visit_id, analysis, frame, diagnosis="mole", note="x")
    with pytest.raises(ValueError, match="note"):
        save(station, nurse, visit_id, analysis, frame, note="bad\x00note")
    assert capture_count(station) == 0 and label_rows(station) == []


# -- point 7: the prediction stored is the one shown ------------------------------------------


def sequence_of(service, ham_dir):
    bands = service.settings.camera.bands
    return [(band, frame) for band, frame in zip(bands, read_frames(ham_dir, len(bands)),
                                                 strict=True)]


def test_a_sequence_stores_exactly_the_prediction_shown(strict_station, ham_dir):
    nurse, visit_id = open_visit(strict_station)
    sequence = sequence_of(strict_station, ham_dir)
    white = dict(sequence)["white"]
    shown = capture_case.analyse(strict_station, white.pixels)
    assert not shown.quality.passed and shown.prediction is None  # "not classified"
    saved = save(strict_station, nurse, visit_id, shown, white, sequence=sequence)
    assert len(saved.capture_ids) == len(sequence) == 7
    assert saved.prediction_id is None and saved.parts == ("capture",)
    assert prediction_rows(strict_station) == []
    upload = SyncRecords(strict_station.database).upload_of(saved.main_capture_id)
    assert upload.document.predictions == []

    # classified anyway: the prediction stored is the one shown, on the white frame only
    sequence = sequence_of(strict_station, ham_dir)
    white = dict(sequence)["white"]
    shown = capture_case.analyse(strict_station, white.pixels, force=True)  # classify anyway
    assert not shown.quality.passed and shown.prediction is not None
    saved = save(strict_station, nurse, visit_id, shown, white, sequence=sequence,
                 diagnosis="bkl")
    white_id = saved.capture_ids[list(dict(sequence)).index("white")]
    assert saved.main_capture_id == white_id
    assert prediction_rows(strict_station) == [
        (white_id, shown.prediction.class_probs, shown.prediction.group_probs,
         shown.prediction.decision)]
    assert label_rows(strict_station) == [(white_id, "operator", "bkl", None, nurse.operator_id)]
    assert saved.parts == ("capture", "prediction", "diagnosis")


# -- point 6: only white light is classified ---------------------------------------------------


def capture_bands(service):
    with service.database.transaction() as db:
        return [(r.id, r.band) for r in db.scalars(select(Capture).order_by(Capture.id))]


def test_a_non_white_still_is_stored_with_its_band_but_never_classified(station, ham_dir):
    nurse, visit_id = open_visit(station)
    (frame,) = read_frames(ham_dir, 1)
    uv = capture_case.analyse(station, frame.pixels, band="uv_365", force=True)
    assert uv.band == "uv_365" and uv.prediction is None and uv.model_error is None
    assert uv.not_classified == "band"
    saved = capture_case.save(station, nurse, visit_id, uv, frame=frame, band="uv_365",
                              body_site="back", access_time=dt.datetime.now(dt.UTC))
    assert saved.prediction_id is None and saved.parts == ("capture",)
    assert capture_bands(station) == [(saved.main_capture_id, "uv_365")]
    assert prediction_rows(station) == []
    # a white-light analysis is never stored as the prediction of a frame in another band
    white = capture_case.analyse(station, frame.pixels, force=True)
    assert white.band == "white" and white.prediction is not None
    with pytest.raises(ValueError, match="not uv_365"):
        capture_case.save(station, nurse, visit_id, white, frame=frame, band="uv_365",
                          body_site="back", access_time=dt.datetime.now(dt.UTC))
    assert capture_count(station) == 1 and prediction_rows(station) == []
    assert [capture_case.is_classifiable_band(b) for b in ("white", "cross_polarised",
                                                           "uv_365", "nir_850", "x")] == [
        True, True, False, False, False]
    assert capture_case.classification_band(["uv_365", "white", "nir_850"]) == "white"
    assert capture_case.classification_band(["uv_365", "cross_polarised"]) == "cross_polarised"
    assert capture_case.classification_band(["uv_365", "nir_850"]) is None
