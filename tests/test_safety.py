"""Safety-first triage: the referral flag and the "not assessable" path, in every interface."""

import dataclasses
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from skinstation.inference.classifier import NOT_ASSESSABLE, Classifier
from skinstation.inference.model_file import load_model_file, save_model_file
from skinstation.inference.preprocessing import decode_image
from skinstation.inference.taxonomy import SKIN_CANCER

REPO = Path(__file__).resolve().parent.parent


def variant(tiny_model: Path, folder: Path, name: str, **changes) -> Path:
    """A copy of the tiny model with changed operating points (re-sealed, so it verifies)."""
    metadata, state = load_model_file(tiny_model)
    path = folder / f"{name}.safetensors"
    save_model_file(path, state, dataclasses.replace(metadata, model_version=name, **changes))
    return path


@pytest.fixture(scope="module")
def images(ham_dir):
    ids = ["ISIC_0027419", "ISIC_0025030", "ISIC_0024306", "ISIC_0024307", "ISIC_0024308",
           "ISIC_0024309", "ISIC_0024310", "ISIC_0024311"]
    return [decode_image(ham_dir / "images" / f"{i}.jpg") for i in ids]


def test_referral_flag_overrides_a_benign_rule_decision(tiny_model, tmp_path, images):
    base = Classifier.load(tiny_model)
    outputs = [base.classify(image) for image in images]
    p_cancer = [p.group_probs[SKIN_CANCER] for p in outputs if p.assessable]
    threshold = float(min(p_cancer))  # every assessable image is at or above it
    metadata, _ = load_model_file(tiny_model)
    referral = {**metadata.referral, "threshold": threshold}
    strict = Classifier.load(variant(tiny_model, tmp_path, "strict", referral=referral,
                                     assessability={"method": "none"}))
    for image in images:
        prediction = strict.classify(image)
        assert prediction.referral is True
        assert prediction.referral_threshold == threshold
        if prediction.decision != SKIN_CANCER:
            assert prediction.guidance_key == "guidance.referral"
            assert prediction.to_dict()["referral_text"].startswith("Safety referral")
        # the rule decision itself is unchanged by the flag
        groups = prediction.group_probs
        top = max(groups, key=groups.get)
        others = sum(v for k, v in groups.items() if k != top)
        assert prediction.decision == (top if groups[top] > others else "indeterminate")
    above = Classifier.load(variant(tiny_model, tmp_path, "lenient",
                                    referral={**referral, "threshold": 1.01},
                                    assessability={"method": "none"}))
    assert not any(above.classify(image).referral for image in images)


@pytest.fixture(scope="module")
def rejecting_model(tiny_model, tmp_path_factory):
    metadata, _ = load_model_file(tiny_model)
    assess = {**metadata.assessability, "threshold": -1.0}  # every score is above it
    return variant(tiny_model, tmp_path_factory.mktemp("reject"), "rejects-all",
                   assessability=assess)


def test_not_assessable_carries_no_diagnosis(rejecting_model, images):
    prediction = Classifier.load(rejecting_model).classify(images[0])
    assert prediction.decision == NOT_ASSESSABLE and not prediction.assessable
    assert prediction.class_probs == {} and prediction.group_probs == {}
    assert prediction.top_class == "" and prediction.referral is False
    assert prediction.guidance() == ("Not assessable: retake a sharp, well-lit close-up of the "
                                     "lesion, or refer.")
    assert "unlike the skin images" in prediction.not_assessable_reason


def test_blank_and_grey_frames_are_not_assessable(tiny_model):
    classifier = Classifier.load(tiny_model)
    blank = classifier.classify(np.full((480, 640, 3), 127, np.uint8))
    assert blank.decision == NOT_ASSESSABLE and blank.not_assessable_reason.startswith("blank")
    grey = np.repeat(np.random.default_rng(0).integers(0, 255, (240, 320, 1), np.uint8), 3, 2)
    result = classifier.classify(grey)
    assert result.decision == NOT_ASSESSABLE and result.not_assessable_reason.startswith("no col")


def test_not_assessable_in_cli(rejecting_model, ham_dir):
    image = str(ham_dir / "images" / "ISIC_0024306.jpg")
    result = subprocess.run([sys.executable, "-m", "skinstation.cli", "predict", image,
                             "--model", str(rejecting_model), "--json"], cwd=REPO,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    payload = json.loads(result.stdout)
    assert payload["decision"] == "not_assessable" and payload["class_probs"] == {}
    assert payload["decision_text"] == "Not assessable"
    text = subprocess.run([sys.executable, "-m", "skinstation.cli", "predict", image,
                           "--model", str(rejecting_model)], cwd=REPO, capture_output=True,
                          text=True, timeout=120).stdout
    assert "decision: not_assessable" in text
    assert "group skin_cancer" not in text and "mel " not in text


def test_not_assessable_in_station_storage(settings, rejecting_model, ham_dir):
    import datetime as dt

    from skinstation.auth import Role
    from skinstation.camera import SimulatedDermatoscope
    from skinstation.services.station import StationService

    station = StationService(settings.replace(model_path=rejecting_model))
    station.create_first_admin("admin", "Admin", "correct horse battery")
    admin = station.login("admin", "correct horse battery")
    station.create_operator(admin, "nurse", "Nurse", Role.STAFF, "correct horse battery")
    nurse = station.login("nurse", "correct horse battery")
    visit = station.start_visit(nurse, station.find_or_create_patient(nurse, "P-9").id)
    with SimulatedDermatoscope(ham_dir / "images") as source:
        frame = source.read()
    prediction = station.classify(frame.pixels)
    saved = station.save_capture(nurse, visit.id, frame, band="white", body_site="arm",
                                 access_time=dt.datetime.now(dt.UTC), prediction=prediction)
    stored = station.store.latest_prediction(saved.capture.id)
    assert stored["decision"] == "not_assessable"
    assert stored["class_probabilities"] == {} and stored["referral"] is None
    assert station.history(nurse)[0].decision == "not_assessable"


def test_subspace_score_measures_feature_energy_outside_the_training_subspace():
    from skinstation.inference.assessability import AssessabilityModel

    rng = np.random.default_rng(0)
    # training features live in the first 3 of 8 dimensions
    train = np.zeros((300, 8))
    train[:, :3] = rng.normal(5.0, 1.0, (300, 3))
    labels = rng.integers(0, 2, 300)
    model = AssessabilityModel.fit_mahalanobis(train, labels, 2, components=3, method="subspace")
    inside = np.array([[5.0, 6.0, 4.0, 0, 0, 0, 0, 0]])
    outside = np.array([[5.0, 5.0, 5.0, 0, 0, 0, 0, 4.0]])
    score_in, score_out = model.scores(inside, np.zeros((1, 2)))[0], model.scores(
        outside, np.zeros((1, 2)))[0]
    assert score_in == pytest.approx(0.0, abs=1e-9)
    # the residual is the off-subspace part (0, ..., 4) relative to the feature norm
    assert score_out == pytest.approx(4.0 / np.linalg.norm(outside), abs=1e-3)
    state = model.state()
    again = AssessabilityModel.from_state(state, model.metadata())
    assert again.method == "subspace" and again.scores(outside, np.zeros((1, 2)))[0] == (
        pytest.approx(score_out, abs=1e-5))
    with pytest.raises(ValueError, match="unknown assessability method"):
        AssessabilityModel.fit_mahalanobis(train, labels, 2, method="pca")
