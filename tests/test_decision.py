import pytest

from skinstation.inference.decision import INDETERMINATE, decide
from skinstation.inference.taxonomy import BENIGN, OTHER_DISEASE, SKIN_CANCER, load_taxonomy


def groups(cancer: float, other: float, benign: float) -> dict[str, float]:
    return {SKIN_CANCER: cancer, OTHER_DISEASE: other, BENIGN: benign}


def test_sixty_thirty_ten_is_cancer():
    assert decide(groups(0.6, 0.3, 0.1)) == SKIN_CANCER


@pytest.mark.parametrize(
    ("probs", "expected"),
    [
        ((0.1, 0.6, 0.3), OTHER_DISEASE),
        ((0.1, 0.3, 0.6), BENIGN),
        ((0.5, 0.3, 0.2), INDETERMINATE),  # a tie with the other two is not "larger"
        ((0.2, 0.5, 0.3), INDETERMINATE),
        ((0.25, 0.25, 0.5), INDETERMINATE),
        ((0.4, 0.35, 0.25), INDETERMINATE),  # largest, but not larger than the rest
        ((0.501, 0.299, 0.2), SKIN_CANCER),
        ((1.0, 0.0, 0.0), SKIN_CANCER),
        ((1 / 3, 1 / 3, 1 / 3), INDETERMINATE),
    ],
)
def test_rule_on_exact_values(probs, expected):
    assert decide(groups(*probs)) == expected


def test_rule_does_not_need_normalised_input():
    assert decide(groups(6.0, 3.0, 1.0)) == SKIN_CANCER
    assert decide(groups(5.0, 3.0, 2.0)) == INDETERMINATE


@pytest.mark.parametrize("bad", [-0.1, float("nan"), float("inf")])
def test_rule_rejects_invalid_probabilities(bad):
    with pytest.raises(ValueError, match="must be a finite number"):
        decide(groups(bad, 0.3, 0.1))


def test_rule_rejects_empty_input():
    with pytest.raises(ValueError, match="at least one"):
        decide({})


def test_taxonomy_groups_follow_reference_design():
    taxonomy = load_taxonomy()
    assert taxonomy.classes == ("akiec", "bcc", "bkl", "df", "mel", "nv", "vasc")
    assert taxonomy.groups == (SKIN_CANCER, OTHER_DISEASE, BENIGN)
    members = {g: sorted(c for c in taxonomy.classes if taxonomy.group_of[c] == g)
               for g in taxonomy.groups}
    assert members == {SKIN_CANCER: ["bcc", "mel"], OTHER_DISEASE: ["akiec", "bkl"],
                       BENIGN: ["df", "nv", "vasc"]}
    assert taxonomy.precancerous == frozenset({"akiec"})


def test_group_probability_is_sum_of_class_probabilities():
    taxonomy = load_taxonomy()
    class_probs = [0.05, 0.10, 0.15, 0.02, 0.40, 0.25, 0.03]  # akiec bcc bkl df mel nv vasc
    cancer, other, benign = taxonomy.group_probabilities(class_probs)
    assert cancer == pytest.approx(0.50)
    assert other == pytest.approx(0.20)
    assert benign == pytest.approx(0.30)
    with pytest.raises(ValueError, match="expected 7 class probabilities"):
        taxonomy.group_probabilities([0.5, 0.5])


def test_pad_ufes_scc_counts_as_cancer_for_triage():
    taxonomy = load_taxonomy()
    assert taxonomy.pad_ufes_20_map["SCC"] == {"dx": "akiec", "group": SKIN_CANCER}
    assert taxonomy.pad_ufes_20_map["SEK"] == {"dx": "bkl"}
