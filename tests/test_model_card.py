"""The model card: rendered from the model file's own figures, minimums marked met or not."""

from skinstation.inference.model_file import read_metadata
from skinstation.training.model_card import floors_section, render_model_card


def _test_metrics(bal: float, mel: float, ece: float, referral: float, specificity: float,
                  rejected: float) -> dict:
    return {"balanced_accuracy": bal, "per_class": {"mel": {"sensitivity": mel}}, "ece": ece,
            "referral": {"sensitivity": referral, "specificity": specificity},
            "decision_rule": {"not_assessable": rejected}}


def test_floors_table_marks_each_minimum_exactly():
    table = floors_section(_test_metrics(0.75, 0.7499, 0.05, 0.93, 0.65, 0.0511)).splitlines()
    assert table[2] == "| balanced accuracy | >= 0.75 | 0.750 | yes |"
    assert table[3] == "| melanoma sensitivity | >= 0.75 | 0.750 | **no** |"
    assert table[4] == "| ECE after temperature scaling | <= 0.05 | 0.050 | yes |"
    assert table[5] == ("| skin-cancer referral sensitivity (as the station shows it) | >= 0.95 "
                        "| 0.930 | **no** |")
    assert table[6] == "| specificity at that referral | >= 0.65 | 0.650 | yes |"
    assert table[7] == "| test images rejected as not assessable | <= 0.05 | 0.051 | **no** |"


def test_card_carries_the_files_identity_and_figures(tiny_model):
    metadata = read_metadata(tiny_model)
    card = render_model_card(metadata, tiny_model.stat().st_size, "skinstation train ...",
                             notes="How the threshold was chosen.")
    assert card.startswith(f"# Model card: {metadata.model_version}")
    assert metadata.content_sha256 in card and "non-commercial" in card
    assert "Not a diagnosis" in card and "skinstation train ..." in card
    bal = metadata.metrics["test"]["balanced_accuracy"]
    assert f"| balanced accuracy | >= 0.75 | {bal:.3f} |" in card
    assert "**Safety referral as the station shows it**" in card
    assert "Flagged or not assessable: sensitivity" in card
    assert "trained on CPU (" in card and "thread(s) x 1 process(es), torch" in card
    assert "plain argmax without the validation-fitted decision offsets" in card
    assert card.endswith("## Notes\nHow the threshold was chosen.\n")


def test_card_describes_a_full_finetune_from_a_parent_model(tiny_model):
    import dataclasses

    metadata = read_metadata(tiny_model)
    child = dataclasses.replace(metadata, training={
        **metadata.training, "full_epochs": 8, "full_batch_size": 8, "full_lr": 1e-4,
        "class_weighting": "logit_adjusted", "init_model": "parent-1",
        "seconds": {"prepare": 120.0, "full_finetune": 2400.0},
        "parent_training": {"seconds": {"features": 600.0, "head": 30.0}}})
    card = render_model_card(child, 1000, "rerun")
    assert ("transfer learning:\n  starting from `parent-1` (cached trunk features, linear head, "
            "then the last blocks fine-tuned), the whole network fine-tuned for 8 epochs on "
            "freshly augmented images, batches of 8, lr 0.0001, logit_adjusted loss)") in card
    assert ("Training time on 2 CPU cores: prepare 2.0 min, full_finetune 40.0 min (and its "
            "starting model: features 10.0 min, head 0.5 min).") in card
    plain = render_model_card(metadata, 1000, "rerun")
    assert "transfer learning: cached trunk features, linear head, then the last blocks" \
        in plain.replace("\n  ", " ")
    assert "whole network" not in plain and "starting model" not in plain
