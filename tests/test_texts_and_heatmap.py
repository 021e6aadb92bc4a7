import numpy as np
import pytest

from skinstation.core.i18n import LANGUAGES, keys, text
from skinstation.inference.classifier import Classifier, guidance_key
from skinstation.inference.heatmap import explain
from skinstation.inference.preprocessing import decode_image


def test_every_language_defines_every_text():
    english = keys("en")
    for language in LANGUAGES:
        assert keys(language) == english
    assert text("guidance.skin_cancer") == ("See a dermatologist promptly; a biopsy may be "
                                            "needed.")
    assert text("guidance.indeterminate").startswith("Refer for expert review")
    assert "not a diagnosis" in text("notice")
    assert text("decision.skin_cancer", "ko") == "피부암 의심"
    with pytest.raises(ValueError, match="unsupported language"):
        text("notice", "fr")
    with pytest.raises(KeyError, match="missing"):
        text("guidance.nothing")


@pytest.mark.parametrize(
    ("decision", "referral", "expected"),
    [
        ("skin_cancer", False, "guidance.skin_cancer"),
        ("skin_cancer", True, "guidance.skin_cancer"),
        ("benign", True, "guidance.referral"),  # referral overrides a benign rule decision
        ("other_disease", True, "guidance.referral"),
        ("indeterminate", True, "guidance.referral"),
        ("benign", False, "guidance.benign"),
        ("indeterminate", False, "guidance.indeterminate"),
        ("not_assessable", False, "guidance.not_assessable"),
    ],
)
def test_guidance_follows_the_more_cautious_output(decision, referral, expected):
    assert guidance_key(decision, referral) == expected


def test_gradcam_heatmap_is_aligned_and_normalised(tiny_model, real_image_path):
    classifier = Classifier.load(tiny_model)
    image = decode_image(real_image_path)
    explanation = explain(classifier, image, target_class="bkl")
    assert explanation.target_class == "bkl"
    assert explanation.heatmap.shape == (224, 224)
    assert explanation.heatmap.max() == pytest.approx(1.0) or explanation.heatmap.max() == 0.0
    assert explanation.heatmap.min() >= 0.0
    overlay = explanation.overlay()
    assert overlay.shape == (224, 224, 3) and overlay.dtype == np.uint8
    assert not np.array_equal(overlay, explanation.prepared)
    default = explain(classifier, image)
    top = max(classifier.classify(image).class_probs.items(), key=lambda kv: kv[1])[0]
    assert default.target_class == top
