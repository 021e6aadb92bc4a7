"""Capture → result latency at the station: frame, quality checks, preprocessing, model, decision.

Usage: .venv/bin/python bench/bench_station.py [--model M] [--data-dir ../shared/data]

Frames come from the simulated dermatoscope replaying real HAM10000 images at 1280×960 through
OpenCV; the heatmap is excluded (it is computed after the result is shown). Budget: median
≤ 100 ms on this 2-core machine.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import numpy as np

from skinstation.camera import SimulatedDermatoscope, assess_quality, capture_still
from skinstation.inference.classifier import Classifier
from skinstation.inference.heatmap import explain
from skinstation.resources import DEFAULT_MODEL_PATH
from skinstation.settings import QualitySettings

ROOT = Path(__file__).resolve().parent.parent


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default=str(DEFAULT_MODEL_PATH))
    parser.add_argument("--data-dir", default=str(ROOT.parent / "shared" / "data"))
    parser.add_argument("--runs", type=int, default=60)
    args = parser.parse_args()

    classifier = Classifier.load(args.model, threads=2)
    quality = QualitySettings()
    totals, frames_ms, quality_ms, model_ms, heatmap_ms = [], [], [], [], []
    folder = Path(args.data_dir) / "ham10000" / "images"
    with SimulatedDermatoscope(folder, size=(1280, 960)) as source:
        for _ in range(5):
            classifier.classify(capture_still(source).pixels)
        for run in range(args.runs):
            t0 = time.perf_counter()
            frame = capture_still(source)
            t1 = time.perf_counter()
            assess_quality(frame.pixels, quality)
            t2 = time.perf_counter()
            classifier.classify(frame.pixels)
            t3 = time.perf_counter()
            totals.append((t3 - t0) * 1000)
            frames_ms.append((t1 - t0) * 1000)
            quality_ms.append((t2 - t1) * 1000)
            model_ms.append((t3 - t2) * 1000)
            if run < 10:
                t4 = time.perf_counter()
                explain(classifier, frame.pixels)
                heatmap_ms.append((time.perf_counter() - t4) * 1000)
    print(f"model {classifier.version}, frames 1280x960 from the simulated dermatoscope, "
          f"{args.runs} runs, 2 threads")
    print(f"capture→result median {statistics.median(totals):.1f} ms, "
          f"p90 {np.percentile(totals, 90):.1f} ms (budget 100 ms)")
    print(f"  frame read {statistics.median(frames_ms):.1f} ms, quality checks "
          f"{statistics.median(quality_ms):.1f} ms, preprocessing+model+decision "
          f"{statistics.median(model_ms):.1f} ms")
    print(f"Grad-CAM heatmap (after the result) median {statistics.median(heatmap_ms):.1f} ms")


if __name__ == "__main__":
    main()
