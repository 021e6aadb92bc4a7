import json
from collections import defaultdict

import pytest

from skinstation.training.sources import load_ham10000, load_pad_ufes20
from skinstation.training.splits import (
    SplitError,
    load_or_make_split,
    load_split,
    make_split,
    save_split,
)


@pytest.fixture(scope="module")
def ham(ham_dir):
    return load_ham10000(ham_dir)[0]


def _units_per_split(records, split):
    seen = defaultdict(set)
    for r in records:
        seen[r.split_key].add(split.assignment[r.image_id])
    return seen


def test_no_lesion_in_two_splits(ham):
    split = make_split(ham, seed=7)
    assert all(len(s) == 1 for s in _units_per_split(ham, split).values())
    lesions = {name: {r.lesion_id for r in split.select(ham, name)} for name in ("train", "val",
                                                                                  "test")}
    assert not lesions["train"] & lesions["test"]
    assert not lesions["train"] & lesions["val"]
    assert not lesions["val"] & lesions["test"]


def test_no_patient_in_two_splits(pad_dir):
    records = load_pad_ufes20(pad_dir)[0]
    split = make_split(records, seed=3)
    assert all(len(s) == 1 for s in _units_per_split(records, split).values())


def test_split_is_stratified_and_seeded(ham):
    split = make_split(ham, (0.7, 0.15, 0.15), seed=42)
    counts = split.counts(ham)
    for dx in ("mel", "df", "vasc", "nv"):
        total = sum(counts[s][dx] for s in counts)
        assert counts["test"][dx] / total == pytest.approx(0.15, abs=0.04)
        assert counts["train"][dx] / total == pytest.approx(0.70, abs=0.04)
    again = make_split(ham, (0.7, 0.15, 0.15), seed=42)
    assert again.assignment == split.assignment
    other = make_split(ham, (0.7, 0.15, 0.15), seed=43)
    assert other.assignment != split.assignment


def test_saved_split_round_trip_and_mismatch(ham, tmp_path):
    split = make_split(ham, seed=1)
    path = save_split(split, ham, tmp_path / "ham.csv")
    sidecar = json.loads(path.with_suffix(".json").read_text())
    assert sidecar["seed"] == 1 and sidecar["fractions"] == [0.7, 0.15, 0.15]
    assert load_split(path, ham).assignment == split.assignment
    with pytest.raises(SplitError, match="does not cover"):
        load_split(path, [*ham, ham[0].__class__(ham[0].image_path, "NEW", "nv", "L")])
    with pytest.raises(SplitError, match="fingerprint"):
        import dataclasses
        load_split(path, [dataclasses.replace(ham[0], dx="mel"), *ham[1:]])
    assert load_or_make_split(path, ham, seed=99).assignment == split.assignment


def test_committed_ham_split_is_used_and_valid(ham):
    from pathlib import Path
    path = Path(__file__).resolve().parent.parent / "resources" / "splits" / "ham10000.csv"
    split = load_split(path, ham)
    sizes = {name: len(split.select(ham, name)) for name in ("train", "val", "test")}
    assert sizes == {"train": 7010, "val": 1518, "test": 1487}
    assert all(len(s) == 1 for s in _units_per_split(ham, split).values())


def test_bad_split_requests(ham):
    with pytest.raises(SplitError, match="sum to 1"):
        make_split(ham, (0.5, 0.2, 0.2))
    with pytest.raises(SplitError, match="empty"):
        make_split([])
    with pytest.raises(SplitError, match="duplicate image id"):
        make_split([ham[0], ham[0]])
    with pytest.raises(SplitError, match="unknown split"):
        make_split(ham[:50]).select(ham[:50], "holdout")


def test_committed_isic_archive_split_keeps_lesions_together_and_is_disjoint_from_ham(
        data_dir, ham):
    from collections import Counter
    from pathlib import Path

    from skinstation.training.sources import load_source

    records, report = load_source("isic-archive", data_dir=data_dir)
    assert report.loaded == 2593 and {r.source for r in records} == {"isic-archive"}
    assert Counter(r.dx for r in records) == {"nv": 1866, "mel": 519, "bkl": 208}
    # an image without a lesion id is its own lesion; 708 images carry one
    assert sum(r.lesion_id != r.image_id for r in records) == 708
    path = Path(__file__).resolve().parent.parent / "resources" / "splits" / "isic-archive.csv"
    split = load_split(path, records)
    sizes = {name: len(split.select(records, name)) for name in ("train", "val", "test")}
    assert sizes == {"train": 1815, "val": 390, "test": 388}
    assert all(len(s) == 1 for s in _units_per_split(records, split).values())
    assert {r.image_id for r in records}.isdisjoint(r.image_id for r in ham)
