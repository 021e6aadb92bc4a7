"""Measure the capture-quality checks on real images and on deliberately spoilt copies.

Prints, for a seeded random sample of HAM10000 (and PAD-UFES-20) images, the percentiles of
every measure, the pass rate of every check with the current ``QualitySettings``, and how
often blurred / darkened / overexposed / glared copies fail the check meant to catch them.

    .venv/bin/python bench/calibrate_quality.py --data-dir ../shared/data --count 1000
    .venv/bin/python bench/calibrate_quality.py --count 0 --spoil-count 300   # all images
"""

from __future__ import annotations

import argparse
import random
import time
from dataclasses import asdict
from pathlib import Path

import cv2
import numpy as np

from skinstation.inference.preprocessing import decode_image
from skinstation.inference.quality import assess_quality, measure_quality
from skinstation.settings import QualitySettings

PERCENTILES = (0, 1, 2, 5, 50, 95, 98, 99, 100)


def blurred(image: np.ndarray, sigma: float = 3.0) -> np.ndarray:
    return cv2.GaussianBlur(image, (0, 0), sigma)


def darkened(image: np.ndarray, factor: float = 0.2) -> np.ndarray:
    return (image.astype(np.float32) * factor).astype(np.uint8)


def overexposed(image: np.ndarray, gain: float = 2.5) -> np.ndarray:
    return np.clip(image.astype(np.float32) * gain, 0, 255).astype(np.uint8)


def with_glare(image: np.ndarray, fraction: float = 0.1, seed: int = 0) -> np.ndarray:
    """Paint small white specular spots until about ``fraction`` of the image is covered."""
    out = image.copy()
    height, width = out.shape[:2]
    rng = np.random.default_rng(seed)
    mask = np.zeros((height, width), np.uint8)
    radius = max(2, round(min(height, width) * 0.03))
    while (mask > 0).mean() < fraction:
        centre = (int(rng.integers(0, width)), int(rng.integers(0, height)))
        cv2.circle(mask, centre, radius, 255, -1)
    out[mask > 0] = 255
    return out


SPOILERS = {
    "blurred sigma 3": (blurred, "focus"),
    "blurred sigma 2": (lambda image: blurred(image, 2.0), "focus"),
    "blurred sigma 1.5": (lambda image: blurred(image, 1.5), "focus"),
    "darkened x0.2": (darkened, "underexposure"),
    "overexposed x2.5": (overexposed, "clipping"),
    "glare 10%": (with_glare, "glare"),
}


def sample(folder: Path, count: int, seed: int = 0) -> list[Path]:
    """A seeded random sample of ``count`` JPEGs (all of them if ``count`` is 0)."""
    files = sorted(folder.glob("*.jpg"))
    random.Random(seed).shuffle(files)
    return files[:count] if count else files


def report(name: str, files: list[Path], settings: QualitySettings, spoil_count: int) -> None:
    measures, reports = [], []
    spoilt_fail: dict[str, list[bool]] = {key: [] for key in SPOILERS}
    spoilt_any: dict[str, list[bool]] = {key: [] for key in SPOILERS}
    spoilt_value: dict[str, list[float]] = {key: [] for key in SPOILERS}
    started = time.perf_counter()
    for number, path in enumerate(files):
        image = decode_image(path)
        measures.append(measure_quality(image))
        reports.append(assess_quality(image, settings))
        if number < spoil_count:
            for key, (spoiler, check) in SPOILERS.items():
                spoilt = assess_quality(spoiler(image), settings)
                spoilt_fail[key].append(not spoilt[check].passed)
                spoilt_value[key].append(spoilt[check].value)
                spoilt_any[key].append(not spoilt.passed)
    elapsed = time.perf_counter() - started
    print(f"\n== {name}: {len(files)} images ({elapsed:.1f} s)")
    print("percentiles " + " ".join(f"{p:>7}" for p in PERCENTILES))
    for field, _ in asdict(measures[0]).items():
        values = np.array([getattr(m, field) for m in measures])
        print(f"{field:22s}" + " ".join(f"{v:7.3g}" for v in np.percentile(values, PERCENTILES)))
    print(f"pass rate overall: {np.mean([r.passed for r in reports]):.1%}")
    for check in reports[0].checks:
        rate = np.mean([r[check.name].passed for r in reports])
        print(f"  {check.name:16s} threshold {check.threshold:<8g} pass {rate:.1%}")
    if spoil_count:
        print(f"spoilt copies of the first {min(spoil_count, len(files))} images:")
        for key, (_, check) in SPOILERS.items():
            values = np.percentile(spoilt_value[key], PERCENTILES)
            print(
                f"  {key:18s} fails {check}: {np.mean(spoilt_fail[key]):.1%}, "
                f"fails overall: {np.mean(spoilt_any[key]):.1%}; {check} percentiles: "
                + " ".join(f"{v:.3g}" for v in values)
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, default=Path("../shared/data"))
    parser.add_argument("--count", type=int, default=1000, help="images per data set; 0 = all")
    parser.add_argument("--spoil-count", type=int, default=1000, help="images to spoil")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    settings = QualitySettings()
    print(settings)
    ham = sample(args.data_dir / "ham10000/images", args.count, args.seed)
    report("HAM10000", ham, settings, args.spoil_count)
    pad = sample(args.data_dir / "pad-ufes-20/images", args.count, args.seed)
    report("PAD-UFES-20 (smartphone, not dermoscopic)", pad, settings, 0)


if __name__ == "__main__":
    main()
