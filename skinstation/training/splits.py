"""Seeded, stratified train/validation/test splits by lesion or patient, saved to disk.

All images of one lesion (HAM10000 ``lesion_id``) or one patient (PAD-UFES-20 ``patient_id``)
land in the same split: images of one lesion on both sides inflate every metric. Units are
stratified by class (a unit with several classes counts as its rarest one), shuffled with a
seed, and divided per class by cumulative rounding so each split's share is as close to the
requested fraction as whole units allow.

A split file is a CSV ``image_id,split_key,split`` plus a JSON sidecar with the seed, fractions
and the records' fingerprint; :func:`load_split` refuses a file made for other records.
"""

from __future__ import annotations

import csv
import json
import random
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from skinstation.training.sources import Record, fingerprint

SPLITS = ("train", "val", "test")


class SplitError(ValueError):
    """A split cannot be made, or a saved split does not fit the records."""


@dataclass(frozen=True)
class Split:
    """Assignment of every image to train, val or test.

    Attributes:
        assignment: image_id → split name.
        seed: Seed the split was made with.
        fractions: Requested (train, val, test) fractions.
        records_fingerprint: Fingerprint of the records it was made for.
    """

    assignment: dict[str, str]
    seed: int
    fractions: tuple[float, float, float]
    records_fingerprint: str

    def select(self, records: Sequence[Record], name: str) -> list[Record]:
        """Return the records assigned to split ``name``, in input order."""
        if name not in SPLITS:
            raise SplitError(f"unknown split {name!r}; use one of {', '.join(SPLITS)}")
        return [r for r in records if self.assignment.get(r.image_id) == name]

    def counts(self, records: Sequence[Record]) -> dict[str, Counter[str]]:
        """Images per class in each split."""
        result: dict[str, Counter[str]] = {name: Counter() for name in SPLITS}
        for record in records:
            result[self.assignment[record.image_id]][record.dx] += 1
        return result


def make_split(
    records: Sequence[Record],
    fractions: tuple[float, float, float] = (0.7, 0.15, 0.15),
    seed: int = 42,
) -> Split:
    """Split records by lesion/patient, stratified by class.

    Args:
        records: The labelled images.
        fractions: Train, validation and test shares (must sum to 1).
        seed: Random seed; the same seed and records give the same split.

    Returns:
        The split.

    Raises:
        SplitError: On bad fractions, duplicate image ids or no records.
    """
    if not records:
        raise SplitError("cannot split an empty set of records")
    if abs(sum(fractions) - 1.0) > 1e-9 or min(fractions) < 0:
        raise SplitError(f"fractions must be >= 0 and sum to 1, got {fractions}")
    ids = Counter(r.image_id for r in records)
    duplicated = [i for i, n in ids.items() if n > 1]
    if duplicated:
        raise SplitError(f"duplicate image id(s): {', '.join(sorted(duplicated)[:5])}")

    frequency = Counter(r.dx for r in records)
    unit_classes: dict[str, set[str]] = defaultdict(set)
    for record in records:
        unit_classes[record.split_key].add(record.dx)
    by_stratum: dict[str, list[str]] = defaultdict(list)
    for unit, classes in unit_classes.items():
        rarest = min(classes, key=lambda c: (frequency[c], c))
        by_stratum[rarest].append(unit)

    rng = random.Random(seed)
    unit_split: dict[str, str] = {}
    for stratum in sorted(by_stratum):
        units = sorted(by_stratum[stratum])
        rng.shuffle(units)
        bounds, cumulative = [], 0.0
        for fraction in fractions:
            cumulative += fraction
            bounds.append(round(cumulative * len(units)))
        start = 0
        for name, end in zip(SPLITS, bounds, strict=True):
            for unit in units[start:end]:
                unit_split[unit] = name
            start = end
    assignment = {r.image_id: unit_split[r.split_key] for r in records}
    return Split(assignment, seed, tuple(fractions), fingerprint(list(records)))  # type: ignore[arg-type]


def save_split(split: Split, records: Sequence[Record], path: str | Path) -> Path:
    """Write ``path`` (CSV) and ``path.json`` (seed, fractions, fingerprint, class counts)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_suffix(".csv.partial")
    with open(temporary, "w", newline="", encoding="utf-8") as stream:
        writer = csv.writer(stream)
        writer.writerow(["image_id", "split_key", "split"])
        for record in sorted(records, key=lambda r: r.image_id):
            writer.writerow([record.image_id, record.split_key, split.assignment[record.image_id]])
    temporary.replace(path)
    counts = {name: dict(sorted(c.items())) for name, c in split.counts(records).items()}
    sidecar = {
        "seed": split.seed,
        "fractions": list(split.fractions),
        "records_fingerprint": split.records_fingerprint,
        "class_counts": counts,
    }
    path.with_suffix(".json").write_text(json.dumps(sidecar, indent=2) + "\n", encoding="utf-8")
    return path


def load_split(path: str | Path, records: Sequence[Record]) -> Split:
    """Read a saved split and check it covers exactly these records.

    Raises:
        SplitError: If the file is missing or made for different records.
    """
    path = Path(path)
    if not path.is_file():
        raise SplitError(f"split file not found: {path}")
    sidecar = json.loads(path.with_suffix(".json").read_text(encoding="utf-8"))
    with open(path, newline="", encoding="utf-8") as stream:
        assignment = {row["image_id"]: row["split"] for row in csv.DictReader(stream)}
    missing = [r.image_id for r in records if r.image_id not in assignment]
    if missing:
        raise SplitError(
            f"split {path} does not cover {len(missing)} record(s), e.g. {missing[0]}: "
            "it was made for other data"
        )
    actual = fingerprint(list(records))
    if actual != sidecar["records_fingerprint"]:
        raise SplitError(
            f"split {path} was made for records with fingerprint "
            f"{sidecar['records_fingerprint'][:12]}…, these have {actual[:12]}…"
        )
    return Split(assignment, int(sidecar["seed"]), tuple(sidecar["fractions"]), actual)


def load_or_make_split(
    path: str | Path, records: Sequence[Record], seed: int = 42,
    fractions: tuple[float, float, float] = (0.7, 0.15, 0.15),
) -> Split:
    """Load the split at ``path`` if it exists, else make and save one."""
    path = Path(path)
    if path.is_file():
        return load_split(path, records)
    split = make_split(records, fractions, seed)
    save_split(split, records, path)
    return split
