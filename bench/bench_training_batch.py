"""Training throughput by batch size on this machine's CPU cores.

Usage: .venv/bin/python bench/bench_training_batch.py [--data-dir ../shared/data] [--threads 2]

Prints, for the ImageNet MobileNetV2: images/s of the frozen trunk (blocks 0-13, what feature
caching runs) and training samples/s (forward + backward + AdamW step) of the tail on cached
trunk features and of the whole network on 224 px images, each at several batch sizes, then
of the network with its first blocks frozen (``--full-from-block``). On 2 cores the network is
much slower per image in large batches (activations leave the cache).

Each rate repeats one fixed batch, so it is an upper bound, good for comparing batch sizes but
not for planning a run: the whole-network phase on freshly augmented HAM10000 images (new
inputs every step, augmentation, the data loop) measured 10.7 images/s in a real run on this
machine against about 26.7 images/s here for batches of 8. With blocks 0-3 frozen a real run
trained at 19-20 images/s on a day when this script gave 23.3 for that and 17.0 for the whole
network (batches of 8). Plan from the real run's progress lines (they print images/s and an
ETA).
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from torch import nn

from skinstation.inference.network import Tail, Trunk, build_network
from skinstation.inference.preprocessing import PreprocessConfig, decode_image, prepare
from skinstation.training.features import run_trunk

ROOT = Path(__file__).resolve().parent.parent


def _rate(step: Callable[[], None], samples: int, repeats: int) -> float:
    step()  # warm-up
    started = time.perf_counter()
    for _ in range(repeats):
        step()
    return samples * repeats / (time.perf_counter() - started)


def _training_step(model: nn.Module, shape: tuple[int, ...], batch: int) -> Callable[[], None]:
    optimiser = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)
    inputs, labels = torch.randn(batch, *shape), torch.randint(0, 7, (batch,))
    loss_fn = nn.CrossEntropyLoss()

    def step() -> None:
        loss_fn(model(inputs), labels).backward()
        optimiser.step()
        optimiser.zero_grad()
    return step


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--data-dir", default=str(ROOT.parent / "shared" / "data"))
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--images", type=int, default=128)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    config = PreprocessConfig()
    paths = sorted((Path(args.data_dir) / "ham10000" / "images").glob("*.jpg"))[: args.images]
    if not paths:
        raise SystemExit(f"no HAM10000 images under {args.data_dir}/ham10000/images")
    images = np.stack([prepare(decode_image(p), config) for p in paths])
    network = build_network("mobilenet_v2", 7, pretrained=True)
    trunk, tail = Trunk(network, 14), Tail(network, 14)
    print(f"threads: {torch.get_num_threads()}, {len(images)} HAM10000 images at "
          f"{config.size} px")
    for batch in (64, 16, 4, 1):
        started = time.perf_counter()
        run_trunk(trunk, images, config, batch_size=batch)
        print(f"trunk feature caching, batches of {batch}: "
              f"{len(images) / (time.perf_counter() - started):.1f} images/s")
    network.train()
    for batch in (64, 16, 8):
        rate = _rate(_training_step(tail, (96, 14, 14), batch), batch, max(2, 256 // batch))
        print(f"tail training on cached features, batches of {batch}: {rate:.0f} samples/s")
    for batch in (32, 8, 4):
        rate = _rate(_training_step(network, (3, config.size, config.size), batch), batch,
                     max(2, 64 // batch))
        print(f"whole-network training (224 px), batches of {batch}: {rate:.1f} samples/s")
    for frozen in (2, 4):  # --full-from-block: no backward pass through the large early maps
        for index, block in enumerate(network.features):
            block.requires_grad_(index >= frozen)
        rate = _rate(_training_step(network, (3, config.size, config.size), 8), 8, 8)
        print(f"training blocks {frozen} on (0-{frozen - 1} frozen), batches of 8: "
              f"{rate:.1f} samples/s")


if __name__ == "__main__":
    main()
