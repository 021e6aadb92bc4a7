"""A "likely benign" decision with a notable skin-cancer probability is no all-clear, on the
station and in everything the classifier returns (engine, provider API) alike."""

from __future__ import annotations

import numpy as np
import pytest

from skinstation.inference.caution import NOTABLE, notable_cancer
from skinstation.inference.classifier import Classifier, guidance_key
from skinstation.inference.taxonomy import load_taxonomy
from skinstation.resources import DEFAULT_MODEL_PATH

TAXONOMY = load_taxonomy()
# benign by the rule (0.80 > 0.20), no referral below the threshold, melanoma 12%
MEL_12 = {"akiec": 0.02, "bcc": 0.02, "bkl": 0.10, "df": 0.02, "mel": 0.12, "nv": 0.70,
          "vasc": 0.02}


def _groups(class_probs: dict[str, float]) -> dict[str, float]:
    groups = dict.fromkeys(TAXONOMY.groups, 0.0)
    for code, p in class_probs.items():
        groups[TAXONOMY.group_of[code]] += p
    return groups


def test_a_12_percent_melanoma_is_notable_and_a_2_percent_one_is_not() -> None:
    assert notable_cancer(MEL_12, _groups(MEL_12), TAXONOMY) == ("mel", 0.12)
    quiet = {**MEL_12, "mel": 0.02, "nv": 0.80}
    assert notable_cancer(quiet, _groups(quiet), TAXONOMY) is None
    assert NOTABLE == 0.10


@pytest.mark.parametrize(("decision", "referral", "caution", "key"), [
    ("benign", False, True, "guidance.benign_caution"),
    ("benign", False, False, "guidance.benign"),
    ("benign", True, True, "guidance.referral"),          # the referral is more cautious
    ("skin_cancer", False, True, "guidance.skin_cancer"),
    ("other_disease", False, True, "guidance.other_disease"),
    ("not_assessable", False, True, "guidance.not_assessable"),
])
def test_guidance_is_the_most_cautious(decision, referral, caution, key) -> None:
    assert guidance_key(decision, referral, caution) == key


def test_the_classifier_itself_returns_the_caution() -> None:
    classifier = Classifier.load(DEFAULT_MODEL_PATH, warm_up=False)
    probs = np.array([MEL_12[c] for c in classifier.taxonomy.classes])
    groups = probs @ classifier.taxonomy.group_matrix()
    prediction = classifier._prediction(probs, groups, None, None, 0.0)
    assert prediction.decision == "benign"
    assert not prediction.referral  # p(cancer) 0.14, below the bundled model's 0.177
    assert prediction.guidance_key == "guidance.benign_caution"
    assert "No urgent action" not in prediction.guidance("en")
    assert prediction.to_dict()["guidance"] == prediction.guidance("en")
