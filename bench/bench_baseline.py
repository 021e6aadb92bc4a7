"""The honest side-by-side: a plain torchvision fine-tune beside the default model, in one run.

The baseline is what an outside reviewer would train in ten minutes of work: torchvision's
MobileNetV2 from ImageNet weights, images squashed to a 192 px square, random flips, rotation,
crop and colour jitter, square-root-balanced sampling, 4 epochs of AdamW with OneCycle, flip
test-time augmentation, a temperature fitted on validation and a referral threshold fitted on
validation at 95 % skin-cancer sensitivity. It trains on exactly the default model's training
data (HAM10000's committed training split plus the ISIC archive's, with ``--also``) and both
models are evaluated on every set in the same run:

- HAM10000 lesion-level test split (7 classes);
- other clinics: the ISIC archive's test split (mel / nv / bkl);
- PAD-UFES-20 test patients (smartphone photographs).

Balanced accuracy is the mean sensitivity over the classes present in the set. The default
model's referral is the station's (not-assessable images show no flag); the baseline has no
assessability check, so its referral is the threshold alone.

Usage::

    .venv/bin/python bench/bench_baseline.py --data-dir ../shared/data [--model M]
        [--epochs 4] [--limit N]   # --limit: a smoke run on N training images

About 30-40 minutes on 2 CPU cores (training) plus the evaluations.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import nn
from torchvision import models, transforms

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from skinstation.inference.classifier import Classifier  # noqa: E402
from skinstation.inference.imagenet import ensure_imagenet_weights  # noqa: E402
from skinstation.inference.taxonomy import SKIN_CANCER, load_taxonomy  # noqa: E402
from skinstation.resources import DEFAULT_MODEL_PATH  # noqa: E402
from skinstation.training.calibration import (  # noqa: E402
    fit_referral_threshold,
    fit_temperature,
    softmax,
)
from skinstation.training.evaluation import compute_metrics, run_model  # noqa: E402
from skinstation.training.metrics import binary_auc, confusion_matrix, sensitivities  # noqa: E402
from skinstation.training.sources import Record, load_source  # noqa: E402
from skinstation.training.splits import load_split  # noqa: E402

MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


def _records(data_dir: Path) -> dict[str, dict[str, list[Record]]]:
    """Every split of the three sources, from the committed split files."""
    sets = {}
    for kind, split_file in (("ham10000", "ham10000.csv"), ("isic-archive", "isic-archive.csv"),
                             ("pad-ufes-20", "pad-ufes-20.csv")):
        records, _ = load_source(f"{kind}:{data_dir / kind}")
        split = load_split(ROOT / "resources" / "splits" / split_file, records)
        sets[kind] = {name: split.select(records, name) for name in ("train", "val", "test")}
    return sets


class _Images(torch.utils.data.Dataset[tuple[torch.Tensor, int]]):
    def __init__(self, records: Sequence[Record], labels: np.ndarray, transform: nn.Module):
        self.records, self.labels, self.transform = list(records), labels, transform

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        with Image.open(self.records[index].image_path) as image:
            return self.transform(image.convert("RGB")), int(self.labels[index])


def _network() -> nn.Module:
    ensure_imagenet_weights("mobilenet_v2")
    network = models.mobilenet_v2(weights=models.MobileNet_V2_Weights.IMAGENET1K_V1)
    network.classifier[1] = nn.Linear(1280, 7)
    return network


def train_baseline(train: Sequence[Record], classes: Sequence[str], epochs: int, size: int,
                   seed: int) -> nn.Module:
    """The plain fine-tune (see the module docstring)."""
    torch.manual_seed(seed)
    labels = np.array([classes.index(r.dx) for r in train])
    counts = np.bincount(labels, minlength=len(classes)).astype(float)
    weights = 1.0 / np.sqrt(np.maximum(counts, 1))[labels]
    sampler = torch.utils.data.WeightedRandomSampler(torch.tensor(weights), len(train),
                                                     replacement=True)
    augment = transforms.Compose([
        transforms.Resize((size, size)), transforms.RandomResizedCrop(size, scale=(0.7, 1.0)),
        transforms.RandomHorizontalFlip(), transforms.RandomVerticalFlip(),
        transforms.RandomRotation(180), transforms.ColorJitter(0.2, 0.2, 0.2, 0.05),
        transforms.ToTensor(), transforms.Normalize(MEAN, STD)])
    loader = torch.utils.data.DataLoader(_Images(train, labels, augment), batch_size=32,
                                         sampler=sampler, num_workers=1)
    network = _network()
    optimiser = torch.optim.AdamW(network.parameters(), lr=1e-3, weight_decay=1e-4)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimiser, max_lr=1e-3,
                                                   total_steps=epochs * len(loader))
    loss_fn = nn.CrossEntropyLoss()
    for epoch in range(epochs):
        network.train()
        started, total = time.monotonic(), 0.0
        for images, targets in loader:
            loss = loss_fn(network(images), targets)
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            schedule.step()
            total += float(loss) * len(targets)
        print(f"[baseline] epoch {epoch + 1}/{epochs}: loss {total / len(train):.4f} "
              f"({time.monotonic() - started:.0f} s)", file=sys.stderr, flush=True)
    return network.eval()


@torch.inference_mode()
def baseline_logits(network: nn.Module, records: Sequence[Record], size: int) -> np.ndarray:
    """Logits with flip test-time augmentation (mean of the image's and its mirror's)."""
    clean = transforms.Compose([transforms.Resize((size, size)), transforms.ToTensor(),
                                transforms.Normalize(MEAN, STD)])
    loader = torch.utils.data.DataLoader(_Images(records, np.zeros(len(records), int), clean),
                                         batch_size=64, num_workers=1)
    out = [(network(x) + network(torch.flip(x, dims=(3,)))).numpy() / 2 for x, _ in loader]
    return np.concatenate(out).astype(np.float64)


def _figures(records: Sequence[Record], probs: np.ndarray, predicted: np.ndarray,
             flagged: np.ndarray) -> dict[str, float]:
    taxonomy = load_taxonomy()
    truth = np.array([taxonomy.classes.index(r.dx) for r in records])
    present = sorted(set(truth.tolist()))
    sens = sensitivities(confusion_matrix(truth, predicted, len(taxonomy.classes)))
    cancer = np.array([r.group(taxonomy) == SKIN_CANCER for r in records])
    p_cancer = (probs @ taxonomy.group_matrix())[:, taxonomy.groups.index(SKIN_CANCER)]
    mel = taxonomy.classes.index("mel")
    return {"balanced_accuracy": float(np.nanmean(sens[present])),
            "mel_sensitivity": float(sens[mel]),
            "referral_sensitivity": float(flagged[cancer].mean()) if cancer.any() else np.nan,
            "referral_specificity": float((~flagged[~cancer]).mean()),
            "cancer_auc": binary_auc(cancer, p_cancer)}


def main(argv: Sequence[str] | None = None) -> int:
    """Train the baseline, evaluate both models on every set, print the table."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data-dir", type=Path, default=ROOT.parent / "shared" / "data")
    parser.add_argument("--model", type=Path, default=DEFAULT_MODEL_PATH)
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--size", type=int, default=192)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--limit", type=int, default=0, help="smoke run: N training images")
    args = parser.parse_args(argv)
    torch.set_num_threads(2)
    taxonomy = load_taxonomy()
    sets = _records(args.data_dir)
    train = sets["ham10000"]["train"] + sets["isic-archive"]["train"]
    val = sets["ham10000"]["val"] + sets["isic-archive"]["val"]
    if args.limit:
        rng = np.random.default_rng(args.seed)
        train = [train[i] for i in rng.choice(len(train), args.limit, replace=False)]
        val = val[:: max(1, len(val) // args.limit)]
    tests = {"HAM10000 test": sets["ham10000"]["test"],
             "other clinics (ISIC)": sets["isic-archive"]["test"],
             "PAD-UFES-20 test": sets["pad-ufes-20"]["test"]}
    if args.limit:
        tests = {k: v[:: max(1, len(v) // args.limit)] for k, v in tests.items()}

    started = time.monotonic()
    network = train_baseline(train, taxonomy.classes, args.epochs, args.size, args.seed)
    train_seconds = time.monotonic() - started
    val_logits = baseline_logits(network, val, args.size)
    val_truth = np.array([taxonomy.classes.index(r.dx) for r in val])
    temperature = fit_temperature(val_logits, val_truth)
    val_probs = softmax(val_logits, temperature)
    cancer = np.array([r.group(taxonomy) == SKIN_CANCER for r in val])
    p_cancer = (val_probs @ taxonomy.group_matrix())[:, taxonomy.groups.index(SKIN_CANCER)]
    threshold = fit_referral_threshold(p_cancer, cancer, 0.95)["threshold"]

    default = Classifier.load(args.model, warm_up=False)
    rows = []
    for name, records in tests.items():
        probs = softmax(baseline_logits(network, records, args.size), temperature)
        p = (probs @ taxonomy.group_matrix())[:, taxonomy.groups.index(SKIN_CANCER)]
        base = _figures(records, probs, probs.argmax(1), p >= threshold)
        outputs = run_model(default, records, log=lambda message: None)
        ours = _figures(records, outputs.probs, outputs.predicted, np.asarray(outputs.referral))
        metrics = compute_metrics(outputs, default.taxonomy, default.temperature,
                                  default.referral_threshold, n_boot=0)
        ours["not_assessable"] = metrics["decision_rule"]["not_assessable"]
        rows.append((name, len(records), base, ours))

    print(f"baseline: torchvision MobileNetV2, {args.size} px, {args.epochs} epochs on "
          f"{len(train)} images ({train_seconds / 60:.1f} min on 2 CPU cores), T "
          f"{temperature:.2f}, referral threshold {threshold:.3f}")
    print(f"default: {default.version} ({args.model})")
    header = (f"{'set':<22} {'n':>5} | {'bal.acc':>7} {'base':>6} {'diff':>6} | "
              f"{'mel sens':>8} {'base':>6} | {'ref sens':>8} {'base':>6} | "
              f"{'ref spec':>8} {'base':>6} | {'NA':>5}")
    print(header)
    print("-" * len(header))
    for name, count, base, ours in rows:
        print(f"{name:<22} {count:>5} | {ours['balanced_accuracy']:>7.3f} "
              f"{base['balanced_accuracy']:>6.3f} "
              f"{ours['balanced_accuracy'] - base['balanced_accuracy']:>+6.3f} | "
              f"{ours['mel_sensitivity']:>8.3f} {base['mel_sensitivity']:>6.3f} | "
              f"{ours['referral_sensitivity']:>8.3f} {base['referral_sensitivity']:>6.3f} | "
              f"{ours['referral_specificity']:>8.3f} {base['referral_specificity']:>6.3f} | "
              f"{ours['not_assessable']:>5.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
