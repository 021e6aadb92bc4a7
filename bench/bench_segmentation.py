"""Lesion segmentation accuracy on HAM10000, and the repeatability behind the change flags.

Usage: .venv/bin/python bench/bench_segmentation.py [--data-dir ../shared/data] [--limit N]

Prints, for :func:`skinstation.inference.segmentation.segment_lesion` on the HAM10000
lesion-level TEST split (resources/splits/ham10000.csv): mean and median Dice and IoU against
HAM10000's reference masks (600×450, scaled to the 200×150 images with nearest-neighbour), a
95% bootstrap CI of the mean Dice (resampling lesions, 2000 draws), Dice per class, the
effect of hair removal, and the time per image (200×150 and 600×450). Then, on every HAM10000
lesion with more than one image (all splits; consecutive images of a lesion form a pair), the
same-lesion differences of area, diameter, colour and asymmetry (median, 90th and 95th
percentiles; sizes corrected by the registration's scale, since HAM10000 has overview and
close-up images of one lesion) that the change thresholds of
:mod:`skinstation.inference.lesion_change` are set above, and how often each flag fires on
those pairs. Finally registration: the mean error on synthetic shifted/rotated copies, and
the reference-mask Dice of real same-lesion pairs before and after alignment. ``--limit N``
uses the first N test images and N pairs.

Note: 402 HAM10000 masks are palette PNGs whose palette maps index 0 to white; masks are read
with :func:`~skinstation.inference.segmentation.read_mask` (converted to grey) so those are
not inverted.
"""

from __future__ import annotations

import argparse
import csv
import time
from collections import defaultdict
from pathlib import Path

import cv2
import numpy as np

from skinstation.inference import lesion_change as change
from skinstation.inference.lesion_registration import register, warp_to_fixed
from skinstation.inference.preprocessing import decode_image
from skinstation.inference.segmentation import dice, iou, read_mask, segment_lesion
from skinstation.resources import RESOURCES_DIR
from skinstation.training.sources import load_source
from skinstation.training.splits import load_split

ROOT = Path(__file__).resolve().parent.parent


def load_mask(ham: Path, image_id: str, shape: tuple[int, int]) -> np.ndarray:
    """The reference mask of ``image_id`` scaled (nearest-neighbour) to ``shape`` (H, W)."""
    return read_mask(ham / "masks" / f"{image_id}_segmentation.png", shape)


def bootstrap_mean(values: np.ndarray, groups: list[str], draws: int = 2000,
                   seed: int = 0) -> tuple[float, float]:
    """95% CI of the mean, resampling groups (lesions) with replacement."""
    by_group: dict[str, list[float]] = defaultdict(list)
    for value, group in zip(values, groups, strict=True):
        by_group[group].append(float(value))
    sums = np.array([sum(v) for v in by_group.values()])
    counts = np.array([len(v) for v in by_group.values()])
    rng = np.random.default_rng(seed)
    picks = rng.integers(0, len(sums), size=(draws, len(sums)))
    means = sums[picks].sum(axis=1) / counts[picks].sum(axis=1)
    low, high = np.percentile(means, [2.5, 97.5])
    return float(low), float(high)


def bench_accuracy(ham: Path, records: list, limit: int | None) -> None:
    """Dice / IoU on the test split, per class, with and without hair removal, and timing."""
    if limit:
        records = records[:limit]
    dices, ious, hair, times, classes, lesions = [], [], [], [], [], []
    for record in records:
        image = decode_image(record.image_path)
        reference = load_mask(ham, record.image_id, image.shape[:2])
        start = time.perf_counter()
        mask = segment_lesion(image)
        times.append(time.perf_counter() - start)
        dices.append(dice(mask, reference))
        ious.append(iou(mask, reference))
        hair.append(dice(segment_lesion(image, hair_removal=True), reference))
        classes.append(record.dx)
        lesions.append(record.lesion_id)
    values = np.array(dices)
    low, high = bootstrap_mean(values, lesions)
    print(f"HAM10000 test split: {len(values)} images, {len(set(lesions))} lesions")
    print(f"  Dice mean {values.mean():.3f} (95% CI {low:.3f}-{high:.3f}), "
          f"median {np.median(values):.3f}; IoU mean {np.mean(ious):.3f}, "
          f"median {np.median(ious):.3f}")
    print(f"  Dice < 0.5 on {np.mean(values < 0.5):.1%} of images; "
          f"with hair removal: mean Dice {np.mean(hair):.3f}")
    for name in sorted(set(classes)):
        chosen = values[[c == name for c in classes]]
        print(f"  {name:6s} n={len(chosen):4d}  Dice mean {chosen.mean():.3f}  "
              f"median {np.median(chosen):.3f}")
    large = [cv2.resize(decode_image(r.image_path), (600, 450), interpolation=cv2.INTER_CUBIC)
             for r in records[:50]]
    start = time.perf_counter()
    for image in large:
        segment_lesion(image)
    per_large = (time.perf_counter() - start) / len(large)
    print(f"  time per image: {np.mean(times) * 1000:.1f} ms mean at 200×150, "
          f"{per_large * 1000:.1f} ms at 600×450 (one process)")


def lesion_pairs(ham: Path, limit: int | None) -> list[tuple[str, str, str]]:
    """(lesion, first image, second image) for consecutive images of multi-image lesions."""
    images: dict[str, list[str]] = defaultdict(list)
    with open(ham / "HAM10000_metadata.csv", newline="") as stream:
        for row in csv.DictReader(stream):
            images[row["lesion_id"]].append(row["image_id"])
    pairs = [(lesion, ids[i], ids[i + 1]) for lesion, ids in sorted(images.items())
             for i in range(len(ids) - 1)]
    return pairs[:limit] if limit else pairs


def _percentiles(name: str, values: list[float]) -> None:
    array = np.abs(np.array(values, dtype=float))
    p50, p90, p95 = np.percentile(array, [50, 90, 95])
    print(f"    {name:34s} median {p50:.3f}  p90 {p90:.3f}  p95 {p95:.3f}")


def _report(title: str, rows: list[dict[str, float]]) -> None:
    print(f"  {title}: {len(rows)} pairs")
    for name in rows[0]:
        if not name.startswith("flag "):
            _percentiles(name, [row[name] for row in rows])
    thresholds = {"area": change.AREA_CHANGE_THRESHOLD,
                  "diameter": change.DIAMETER_CHANGE_THRESHOLD,
                  "colour": change.COLOUR_CHANGE_THRESHOLD,
                  "asymmetry": change.ASYMMETRY_CHANGE_THRESHOLD, "any": float("nan")}
    rates = ", ".join(f"{name} (>{value:g}) {np.mean([r['flag ' + name] for r in rows]):.1%}"
                      for name, value in thresholds.items())
    print(f"    flags fire on: {rates}".replace(" (>nan)", ""))


def bench_repeatability(ham: Path, limit: int | None) -> None:
    """Same-lesion differences of every measure, and registration on real pairs."""
    pairs = lesion_pairs(ham, limit)
    cache: dict[str, tuple[np.ndarray, np.ndarray, change.LesionMeasurement]] = {}

    def measured(image_id: str) -> tuple[np.ndarray, np.ndarray, change.LesionMeasurement]:
        if image_id not in cache:
            image = decode_image(ham / "images" / f"{image_id}.jpg")
            mask = segment_lesion(image)
            cache[image_id] = (image, mask, change.measure_lesion(image, mask))
        return cache[image_id]

    rows: list[dict[str, float]] = []
    methods: list[str] = []
    before_dice, after_dice, scales = [], [], []
    for _, first, second in pairs:
        image_a, mask_a, a = measured(first)
        image_b, mask_b, b = measured(second)
        registration = register(image_a, image_b, mask_a, mask_b)
        raw = change.compare(a, b)
        result = change.compare(a, b, after_scale=registration.scale)
        reference_a = load_mask(ham, first, image_a.shape[:2])
        reference_b = load_mask(ham, second, image_b.shape[:2])
        area_a = max(int(reference_a.sum()), 1)
        rows.append({
            "relative area change": result.area_change,
            "relative diameter change": result.diameter_change,
            "colour ΔE (lesion − skin)": result.colour_delta_e,
            "asymmetry change": result.asymmetry_change,
            "colour count change": result.colour_count_change,
            "area change, no scale correction": raw.area_change,
            "colour ΔE, lesion mean only": float(np.linalg.norm(np.subtract(a.lab_mean,
                                                                            b.lab_mean))),
            "reference-mask area change": (reference_b.sum() * registration.scale**2
                                           - area_a) / area_a,
            **{f"flag {name}": float(name in result.flags)
               for name in ("area", "diameter", "colour", "asymmetry")},
            "flag any": float(result.changed),
        })
        methods.append(registration.method)
        before_dice.append(dice(reference_a, reference_b))
        aligned = warp_to_fixed(reference_b, registration, reference_a.shape)
        after_dice.append(dice(reference_a, aligned))
        scales.append(registration.scale)
    print(f"Same-lesion repeatability: {len(pairs)} image pairs of "
          f"{len({p[0] for p in pairs})} HAM10000 lesions (all splits), absolute differences; "
          "sizes scaled by the registration")
    _report("all pairs", rows)
    _report("pairs registered by ORB (scale measured; thresholds set on these)",
            [row for row, method in zip(rows, methods, strict=True) if method == "orb"])
    counts = {name: methods.count(name) for name in sorted(set(methods))}
    zoomed = np.mean(np.abs(np.log(scales)) > np.log(1.25))
    print(f"Registration of those pairs: methods {counts}; reference-mask Dice mean "
          f"{np.mean(before_dice):.3f} unaligned, {np.mean(after_dice):.3f} aligned; scale "
          f"between captures outside 0.8-1.25 in {zoomed:.1%}")


def bench_synthetic_registration(ham: Path, records: list, count: int = 100) -> None:
    """Mean point error after registering shifted/rotated copies (up to 15 px, 20°)."""
    rng = np.random.default_rng(0)
    errors, methods = [], defaultdict(int)
    for record in records[:count]:
        image = decode_image(record.image_path)
        height, width = image.shape[:2]
        angle, shift = rng.uniform(-20, 20), rng.uniform(-15, 15, size=2)
        truth = cv2.getRotationMatrix2D((width / 2, height / 2), angle, 1.0)
        truth[:, 2] += shift
        moving = cv2.warpAffine(image, truth, (width, height), borderMode=cv2.BORDER_REFLECT_101)
        registration = register(image, moving, segment_lesion(image), segment_lesion(moving))
        methods[registration.method] += 1
        grid = np.stack(np.meshgrid(np.arange(20, width - 20, 10),
                                    np.arange(20, height - 20, 10)), -1).reshape(-1, 2)
        in_moving = grid @ truth[:, :2].T + truth[:, 2]
        errors.append(float(np.linalg.norm(registration.apply(in_moving) - grid, axis=1).mean()))
    values = np.array(errors)
    print(f"Synthetic registration ({len(values)} test images, ≤20°, ≤15 px): error median "
          f"{np.median(values):.2f} px, p95 {np.percentile(values, 95):.2f} px, "
          f"methods {dict(sorted(methods.items()))}")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--data-dir", default=str(ROOT.parent / "shared" / "data"))
    parser.add_argument("--limit", type=int, default=None, help="first N images and N pairs")
    args = parser.parse_args()
    ham = Path(args.data_dir) / "ham10000"
    records, _ = load_source(f"ham10000:{ham}")
    test = load_split(RESOURCES_DIR / "splits" / "ham10000.csv", records).select(records, "test")
    cv2.setNumThreads(1)
    bench_accuracy(ham, test, args.limit)
    bench_repeatability(ham, args.limit)
    bench_synthetic_registration(ham, test, count=min(100, args.limit or 100))


if __name__ == "__main__":
    main()
