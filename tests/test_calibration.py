import numpy as np
import pytest

from skinstation.training.calibration import (
    fit_referral_threshold,
    fit_rejection_threshold,
    fit_temperature,
    softmax,
)
from skinstation.training.metrics import (
    balanced_accuracy,
    binary_auc,
    bootstrap_ci,
    confusion_matrix,
    expected_calibration_error,
    sensitivities,
    specificities,
)


def test_temperature_recovers_known_scale():
    rng = np.random.default_rng(0)
    true_logits = rng.normal(0, 2.0, size=(20000, 7))
    labels = np.array([rng.choice(7, p=p) for p in softmax(true_logits)])
    t = fit_temperature(true_logits * 3.0, labels)  # over-confident by a factor of 3
    assert t == pytest.approx(3.0, rel=0.05)
    probs = softmax(true_logits * 3.0, t)
    assert expected_calibration_error(probs, labels) < 0.02
    assert expected_calibration_error(softmax(true_logits * 3.0), labels) > 0.1


def test_referral_threshold_hits_target_sensitivity_exactly():
    rng = np.random.default_rng(1)
    positives = rng.uniform(0.2, 1.0, 200)
    negatives = rng.uniform(0.0, 0.6, 800)
    scores = np.r_[positives, negatives]
    truth = np.r_[np.ones(200, bool), np.zeros(800, bool)]
    fitted = fit_referral_threshold(scores, truth, 0.95)
    assert fitted["sensitivity"] == 0.95  # exactly 190 of 200
    assert (scores[truth] >= fitted["threshold"]).sum() == 190
    # any higher threshold misses a 191st... no: it misses more than the 10 allowed
    above = np.sort(scores[truth])[::-1][190]
    assert above < fitted["threshold"]
    expected_spec = (negatives < fitted["threshold"]).mean()
    assert fitted["specificity"] == pytest.approx(expected_spec)
    assert fit_referral_threshold(scores, truth, 1.0)["threshold"] == positives.min()


def test_referral_threshold_errors():
    with pytest.raises(ValueError, match="without positive"):
        fit_referral_threshold(np.array([0.1, 0.2]), np.array([False, False]), 0.95)
    with pytest.raises(ValueError, match="target sensitivity"):
        fit_referral_threshold(np.array([0.1]), np.array([True]), 0.0)


def test_rejection_threshold_quantile():
    scores = np.arange(100, dtype=float)
    threshold = fit_rejection_threshold(scores, 0.05)
    assert (scores > threshold).mean() == pytest.approx(0.04)
    assert (scores > threshold).mean() <= 0.05


def test_rejection_threshold_holds_the_cancers_to_the_same_rate():
    # 90 typical non-cancers (scores 0..89) and 10 cancers that all look less typical (80..98)
    scores = np.concatenate([np.arange(90, dtype=float), np.arange(80, 100, 2, dtype=float)])
    cancer = np.arange(100) >= 90
    overall = fit_rejection_threshold(scores, 0.1)
    assert overall == 86.0  # 9 of 100 above it ...
    assert (scores > overall).sum() == 9
    assert (scores[cancer] > overall).sum() == 6  # ... but 6 of the 10 cancers
    protected = fit_rejection_threshold(scores, 0.1, protected=cancer)
    assert protected == 98.0  # the cancers' own 90% quantile (method "higher")
    assert (scores[cancer] > protected).sum() == 0
    assert (scores > protected).sum() == 0
    # when the cancers are typical the overall rate decides, as before
    typical = np.arange(100) < 10
    assert fit_rejection_threshold(scores, 0.1, protected=typical) == overall
    assert fit_rejection_threshold(scores, 0.1, protected=np.zeros(100, bool)) == overall
    with pytest.raises(ValueError, match="protected mask has shape"):
        fit_rejection_threshold(scores, 0.1, protected=cancer[:50])


def test_class_metrics_exact():
    truth = np.array([0, 0, 0, 1, 1, 2])
    pred = np.array([0, 0, 1, 1, 2, 2])
    matrix = confusion_matrix(truth, pred, 3)
    assert matrix.tolist() == [[2, 1, 0], [0, 1, 1], [0, 0, 1]]
    np.testing.assert_allclose(sensitivities(matrix), [2 / 3, 1 / 2, 1.0])
    np.testing.assert_allclose(specificities(matrix), [1.0, 3 / 4, 4 / 5])
    assert balanced_accuracy(truth, pred, 3) == pytest.approx((2 / 3 + 1 / 2 + 1) / 3)


def test_auc_exact_with_ties():
    assert binary_auc(np.array([1, 1, 0, 0]), np.array([0.9, 0.8, 0.3, 0.1])) == 1.0
    assert binary_auc(np.array([1, 0]), np.array([0.5, 0.5])) == 0.5
    assert binary_auc(np.array([1, 0, 1, 0]), np.array([0.9, 0.8, 0.3, 0.1])) == 0.75
    assert np.isnan(binary_auc(np.array([1, 1]), np.array([0.2, 0.3])))


def test_bootstrap_ci_contains_estimate_and_shrinks_with_more_data():
    rng = np.random.default_rng(2)

    def width(n):
        hits = rng.random(n) < 0.8
        units = [f"u{i // 2}" for i in range(n)]  # two images per lesion
        low, high = bootstrap_ci(lambda idx: hits[idx].mean(), units, n_boot=500, seed=0)
        assert low <= hits.mean() <= high
        return high - low

    small, large = width(100), width(2000)
    assert large < small / 3


def test_decision_offsets_reach_the_protected_sensitivity():
    from skinstation.inference.classifier import predicted_classes
    from skinstation.training.calibration import fit_decision_offsets

    rng = np.random.default_rng(3)
    n = 3000
    labels = rng.choice(3, size=n, p=[0.7, 0.2, 0.1])
    logits = rng.normal(0, 1.0, (n, 3))
    logits[np.arange(n), labels] += 1.2
    logits[:, 0] += 1.5  # a majority-leaning model: class 2 is under-called
    probs = softmax(logits)
    plain = confusion_matrix(labels, probs.argmax(1), 3)
    assert sensitivities(plain)[2] < 0.5
    offsets = fit_decision_offsets(probs, labels, {2: 0.8})
    tuned = confusion_matrix(labels, predicted_classes(probs, offsets), 3)
    assert sensitivities(tuned)[2] >= 0.8
    assert np.nanmean(sensitivities(tuned)) > np.nanmean(sensitivities(plain))
    assert np.array_equal(predicted_classes(probs, np.zeros(3)), probs.argmax(1))


def test_unreachable_minimum_never_lowers_the_protected_class():
    from skinstation.training.calibration import fit_decision_offsets

    # class 1 is indistinguishable from class 0 for half its cases: 100% is out of reach
    labels = np.array([0] * 60 + [1] * 20 + [2] * 20)
    probs = np.tile([0.1, 0.1, 0.1], (100, 1))
    probs[labels == 0] = [0.8, 0.1, 0.1]
    probs[labels == 2] = [0.1, 0.1, 0.8]
    probs[60:70] = [0.1, 0.8, 0.1]
    probs[70:80] = [0.98, 0.01, 0.01]  # log-ratio 4.6: beyond the 3.0 the search may raise to
    offsets = fit_decision_offsets(probs, labels, {1: 1.0})
    assert offsets[1] == 3.0


def test_by_default_only_protected_classes_get_an_offset():
    from skinstation.training.calibration import fit_decision_offsets

    rng = np.random.default_rng(5)
    labels = rng.choice(4, size=2000, p=[0.6, 0.2, 0.1, 0.1])
    logits = rng.normal(0, 1.0, (2000, 4))
    logits[np.arange(2000), labels] += 1.0
    logits[:, 0] += 1.5
    probs = softmax(logits)
    offsets = fit_decision_offsets(probs, labels, {3: 0.7})
    assert offsets[3] > 0 and np.count_nonzero(offsets) == 1
    # with ascent the unprotected minority classes move too (the behaviour it overfits with)
    searched = fit_decision_offsets(probs, labels, {3: 0.7}, rounds=3)
    assert np.count_nonzero(searched[:3]) >= 1


def test_referral_threshold_counts_not_assessable_cancers_as_missed():
    # 10 cancers, 2 of them rejected as not assessable: the station shows them no flag, so a
    # 0.8 target needs all 8 assessable cancers flagged (threshold at the lowest of them)
    scores = np.array([0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3, 0.2, 0.99, 0.95,
                       0.1, 0.15, 0.25, 0.35, 0.05])
    truth = np.r_[np.ones(10, bool), np.zeros(5, bool)]
    assessable = np.r_[np.ones(8, bool), False, False, np.ones(5, bool)]
    fitted = fit_referral_threshold(scores, truth, 0.8, assessable=assessable)
    assert fitted["threshold"] == 0.2 and fitted["sensitivity"] == 0.8
    assert fitted["reachable"] == 1.0 and fitted["not_assessable_cancers"] == 2.0
    assert fitted["specificity"] == pytest.approx(3 / 5)  # 0.25 and 0.35 are flagged
    # ignoring assessability the same target is met by a higher threshold
    assert fit_referral_threshold(scores, truth, 0.8)["threshold"] == 0.4
    # 0.9 cannot be reached: every assessable cancer is flagged, and it says so
    unreachable = fit_referral_threshold(scores, truth, 0.9, assessable=assessable)
    assert unreachable["threshold"] == 0.2 and unreachable["reachable"] == 0.0
    assert unreachable["sensitivity"] == 0.8
    with pytest.raises(ValueError, match="no assessable cancer sample"):
        fit_referral_threshold(scores, truth, 0.8, assessable=~truth)


def test_a_stored_training_prior_is_added_back_before_the_temperature(tiny_model, tmp_path):
    import dataclasses

    from skinstation.inference.classifier import Classifier
    from skinstation.inference.model_file import load_model_file, read_metadata, save_model_file

    metadata, state = load_model_file(tiny_model)
    assert "training_log_prior" not in metadata.to_json()  # older files keep their bytes
    prior = list(np.log([0.05, 0.05, 0.1, 0.02, 0.1, 0.66, 0.02]))
    save_model_file(tmp_path / "prior.st", state, dataclasses.replace(
        metadata, training_log_prior=prior, temperature=2.0))
    assert read_metadata(tmp_path / "prior.st").training_log_prior == prior
    classifier = Classifier.load(tmp_path / "prior.st", warm_up=False)
    logits = np.array([[0.5, -1.0, 0.2, 0.0, 1.0, 0.3, -0.2]])
    np.testing.assert_allclose(classifier.probabilities(logits),
                               softmax(logits + np.array(prior), 2.0))
    # the decision stays the balanced one the network was trained for: argmax of the logits
    # (+ offsets), not of the prior-shifted probabilities (which would say nv, index 5)
    assert int((logits[0] + np.array(prior)).argmax()) == 5
    assert classifier.predicted_classes(classifier.probabilities(logits)).tolist() == [4]
    wrong = dataclasses.replace(metadata, training_log_prior=[0.0] * 3)
    save_model_file(tmp_path / "wrong.st", state, wrong)
    with pytest.raises(ValueError, match="training_log_prior must have one value per class"):
        Classifier.load(tmp_path / "wrong.st", warm_up=False)
