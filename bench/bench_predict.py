"""Single-image predict latency and batch-evaluation throughput of a model file.

Usage: .venv/bin/python bench/bench_predict.py [--model M] [--data-dir ../shared/data]

Prints the median (and p90) of >= 50 single-image predictions (decode excluded; preprocessing +
model + decision included) with 2 threads, and images/s for batched evaluation.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import numpy as np
import torch

from skinstation.inference.classifier import Classifier
from skinstation.inference.preprocessing import decode_image, preprocess
from skinstation.resources import DEFAULT_MODEL_PATH
from skinstation.training.evaluation import EVAL_BATCH_SIZE

ROOT = Path(__file__).resolve().parent.parent


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default=str(DEFAULT_MODEL_PATH))
    parser.add_argument("--data-dir", default=str(ROOT.parent / "shared" / "data"))
    parser.add_argument("--runs", type=int, default=100)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()

    torch.set_num_threads(args.threads)
    started = time.perf_counter()
    classifier = Classifier.load(args.model, threads=args.threads)
    load_seconds = time.perf_counter() - started
    images_dir = Path(args.data_dir) / "ham10000" / "images"
    paths = sorted(images_dir.glob("*.jpg"))[: max(args.runs, 256)]
    images = [decode_image(p) for p in paths]

    single = []
    for image in images[: args.runs]:
        t0 = time.perf_counter()
        classifier.classify(image)
        single.append((time.perf_counter() - t0) * 1000)
    prep = []
    for image in images[:50]:
        t0 = time.perf_counter()
        preprocess(image, classifier.preprocess_config)
        prep.append((time.perf_counter() - t0) * 1000)

    batch_rates = {}
    for size in sorted({1, 4, 8, 32, EVAL_BATCH_SIZE}):
        t0 = time.perf_counter()
        for start in range(0, len(images), size):
            classifier.classify_batch(images[start : start + size])
        batch_rates[size] = len(images) / (time.perf_counter() - t0)

    size_mb = Path(args.model).stat().st_size / 1e6
    print(f"model: {args.model} ({classifier.version}), {size_mb:.1f} MB, "
          f"load+verify+warm-up {load_seconds * 1000:.0f} ms")
    print(f"threads: {torch.get_num_threads()}, runs: {len(single)}")
    print(f"single-image predict (preprocess + model + decision): median "
          f"{statistics.median(single):.1f} ms, p90 {np.percentile(single, 90):.1f} ms")
    print(f"  of which preprocessing: median {statistics.median(prep):.1f} ms")
    for size, rate in batch_rates.items():
        used = " (used by evaluation)" if size == EVAL_BATCH_SIZE else ""
        print(f"batch evaluation (batches of {size}): {rate:.1f} images/s{used}")


if __name__ == "__main__":
    main()
