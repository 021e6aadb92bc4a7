"""Does the body site (and, for information, age and sex) improve the fine-class decision?

Usage: .venv/bin/python bench/bench_site_prior.py [--model M] [--data-dir ../shared/data]
       [--cache DIR]

Runs the model once over the HAM10000 validation and test splits (outputs cached under
``--cache``), then compares, by 5-fold lesion-grouped cross-validation inside the validation
split (3 seeds), the model's own decision (temperature + melanoma-protected offsets refitted
on 4 folds) with the same decision after adding metadata prior offsets
``w · (log p(y | value) − log p(y))`` counted on the training split. Prints the mean
cross-validated balanced accuracy per weight, then compares decision-offset fitters (today's
coordinate ascent, raising the protected classes only, ascent with a larger minimum gain) by
held-out balanced accuracy and per-class sensitivity. The protocol and its adoption rule are
pre-registered in resources/models/MODEL_CARD.notes.md; the test split is not read here.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from skinstation.inference.classifier import Classifier, predicted_classes, softmax
from skinstation.resources import DEFAULT_MODEL_PATH, RESOURCES_DIR
from skinstation.training.calibration import fit_decision_offsets
from skinstation.training.evaluation import age_band, run_model
from skinstation.training.metrics import balanced_accuracy, confusion_matrix, sensitivities
from skinstation.training.sources import Record, load_source
from skinstation.training.splits import load_split

ROOT = Path(__file__).resolve().parent.parent
WEIGHTS = (0.0, 0.25, 0.5, 0.75, 1.0)
SHRINK = 20.0
FACTORS: dict[str, Callable[[Record], str]] = {
    "site": lambda r: r.attributes.get("localization") or "unknown",
    "age": lambda r: age_band(r.attributes.get("age", "")),
    "sex": lambda r: r.attributes.get("sex") or "unknown",
}


def prior_table(records: Sequence[Record], labels: np.ndarray, key: Callable[[Record], str],
                k: int) -> dict[str, np.ndarray]:
    """log p(y | value) − log p(y) per value, shrunk toward p(y) by SHRINK pseudo-images."""
    overall = np.bincount(labels, minlength=k) / len(labels)
    table = {}
    for value in sorted({key(r) for r in records}):
        mask = np.array([key(r) == value for r in records])
        counts = np.bincount(labels[mask], minlength=k)
        table[value] = np.log((counts + SHRINK * overall) / (mask.sum() + SHRINK)) - np.log(overall)
    table["unknown"] = np.zeros(k)
    return table


def folds(groups: Sequence[str], n: int, seed: int) -> np.ndarray:
    """Fold index per sample; every image of one lesion lands in the same fold."""
    unique = sorted(set(groups))
    order = np.random.default_rng(seed).permutation(len(unique))
    fold_of = {unique[i]: rank % n for rank, i in enumerate(order)}
    return np.array([fold_of[g] for g in groups])


def cv_scores(scaled: np.ndarray, labels: np.ndarray, groups: Sequence[str],
              protected: dict[int, float], k: int, seeds: Sequence[int] = (0, 1, 2),
              **fitter: Any) -> tuple[float, np.ndarray]:
    """Mean held-out balanced accuracy and per-class sensitivity, offsets refitted per fold.

    ``fitter`` goes to ``fit_decision_offsets`` (e.g. ``rounds=0``: raise protected classes
    only; ``min_gain=0.01``: fewer coordinate-ascent moves).
    """
    scores, per_class = [], []
    probs = softmax(scaled)
    for seed in seeds:
        fold = folds(groups, 5, seed)
        for f in range(5):
            fit, held = fold != f, fold == f
            offsets = fit_decision_offsets(probs[fit], labels[fit], protected, **fitter)
            predicted = predicted_classes(probs[held], offsets)
            scores.append(balanced_accuracy(labels[held], predicted, k))
            per_class.append(sensitivities(confusion_matrix(labels[held], predicted, k)))
    return float(np.mean(scores)), np.nanmean(per_class, axis=0)


def cv_score(scaled: np.ndarray, labels: np.ndarray, groups: Sequence[str],
             protected: dict[int, float], k: int) -> float:
    """Mean held-out balanced accuracy of today's offset fitter."""
    return cv_scores(scaled, labels, groups, protected, k)[0]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default=str(DEFAULT_MODEL_PATH))
    parser.add_argument("--data-dir", default=str(ROOT.parent / "shared" / "data"))
    parser.add_argument("--cache", default="/tmp/skinstation-bench-cache")
    args = parser.parse_args()
    classifier = Classifier.load(args.model)
    classes = list(classifier.metadata.classes)
    k = len(classes)
    records, _ = load_source(f"ham10000:{Path(args.data_dir) / 'ham10000'}")
    split = load_split(RESOURCES_DIR / "splits" / "ham10000.csv", records)
    train, val = split.select(records, "train"), split.select(records, "val")
    cache = Path(args.cache) / f"{classifier.metadata.model_version}-val.npy"
    if cache.is_file():
        logits = np.load(cache)
    else:
        logits = run_model(classifier, val).logits
        cache.parent.mkdir(parents=True, exist_ok=True)
        np.save(cache, logits)
    labels = np.array([classes.index(r.dx) for r in val])
    train_labels = np.array([classes.index(r.dx) for r in train])
    groups = [r.lesion_id for r in val]
    protected = {classes.index(c): v for c, v in
                 classifier.metadata.training.get("min_sensitivity", {}).items()}
    base = np.asarray(logits, np.float64) / classifier.metadata.temperature
    print(f"model {classifier.metadata.model_version}; validation {len(val)} images, "
          f"{len(set(groups))} lesions; protected {protected}")
    print(f"plain argmax (no offsets): "
          f"{balanced_accuracy(labels, predicted_classes(softmax(base)), k):.4f}")
    combos = {"site": ("site",), "age": ("age",), "sex": ("sex",),
              "site+age+sex": ("site", "age", "sex")}
    tables = {name: prior_table(train, train_labels, key, k) for name, key in FACTORS.items()}
    for combo, factors in combos.items():
        row = []
        for w in WEIGHTS:
            shift = sum(np.stack([tables[f].get(FACTORS[f](r), np.zeros(k)) for r in val])
                        for f in factors)
            row.append(f"w={w:.2f} {cv_score(base + w * shift, labels, groups, protected, k):.4f}")
        print(f"{combo:>13}: " + "  ".join(row))
    fitters: dict[str, dict[str, Any]] = {
        "(a) raise protected + ascent (today)": {},
        "(b) raise protected only": {"rounds": 0},
        "(c) ascent with min gain 0.01": {"min_gain": 0.01},
    }
    print("decision-offset fitters (no metadata), held-out means:")
    for name, fitter in fitters.items():
        score, per_class = cv_scores(base, labels, groups, protected, k, **fitter)
        print(f"  {name}: balanced accuracy {score:.4f}; "
              + " ".join(f"{c} {v:.3f}" for c, v in zip(classes, per_class, strict=True)))


if __name__ == "__main__":
    main()
