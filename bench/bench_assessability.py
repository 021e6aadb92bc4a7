"""How the "not assessable" check behaves: real non-skin photos vs real lesion images.

Usage: .venv/bin/python bench/bench_assessability.py [--model M] [--data-dir ../shared/data]

Prints, for the model file: the rejection rate on the HAM10000 lesion-level test split and on
PAD-UFES-20 (in-distribution, should be low), on scikit-image's sample photos (not skin, should
be high), on blank frames and on heavily corrupted versions of real lesion images.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from skinstation.inference.classifier import Classifier
from skinstation.resources import DEFAULT_MODEL_PATH, RESOURCES_DIR
from skinstation.training.sources import load_source
from skinstation.training.splits import load_split

ROOT = Path(__file__).resolve().parent.parent
NON_SKIN = ("astronaut", "chelsea", "coffee", "rocket", "hubble_deep_field", "camera", "page",
            "brick", "grass", "coins", "text", "moon", "gravel", "clock", "colorwheel",
            "immunohistochemistry", "retina", "cat", "logo")


def non_skin_photos() -> dict[str, np.ndarray]:
    """scikit-image's bundled sample photos as RGB uint8 (grey ones replicated)."""
    import skimage.data

    photos = {}
    for name in NON_SKIN:
        image = np.asarray(getattr(skimage.data, name)())
        if image.dtype == bool:
            image = image.astype(np.uint8) * 255
        if image.ndim == 2:
            image = np.stack([image] * 3, axis=-1)
        photos[name] = np.ascontiguousarray(image[..., :3].astype(np.uint8))
    return photos


def corruptions(image: np.ndarray, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Heavily corrupted versions of a real lesion image."""
    height, width = image.shape[:2]
    blocks = image[: height // 10 * 10, : width // 10 * 10].reshape(10, height // 10, 10,
                                                                  width // 10, 3)
    order = rng.permutation(100)
    shuffled = blocks.transpose(0, 2, 1, 3, 4).reshape(100, height // 10, width // 10, 3)[order]
    shuffled = shuffled.reshape(10, 10, height // 10, width // 10, 3).transpose(0, 2, 1, 3, 4)
    return {
        "noise": np.clip(image + rng.normal(0, 90, image.shape), 0, 255).astype(np.uint8),
        "block-shuffled": np.ascontiguousarray(shuffled.reshape(height // 10 * 10,
                                                               width // 10 * 10, 3)),
        "inverted": 255 - image,
        "pixel-shuffled": rng.permutation(image.reshape(-1, 3)).reshape(image.shape),
    }


def rate(classifier: Classifier, images: list[np.ndarray]) -> float:
    """Fraction of images reported as not assessable."""
    flags = []
    for start in range(0, len(images), 32):
        flags += [not p.assessable for p in classifier.classify_batch(images[start:start + 32])]
    return float(np.mean(flags))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default=str(DEFAULT_MODEL_PATH))
    parser.add_argument("--data-dir", default=str(ROOT.parent / "shared" / "data"))
    args = parser.parse_args()
    from skinstation.inference.preprocessing import decode_image

    classifier = Classifier.load(args.model)
    data = Path(args.data_dir)
    records, _ = load_source(f"ham10000:{data / 'ham10000'}")
    test = load_split(RESOURCES_DIR / "splits" / "ham10000.csv", records).select(records, "test")
    ham = [decode_image(r.image_path) for r in test]
    pad_records, _ = load_source(f"pad-ufes-20:{data / 'pad-ufes-20'}")
    pad = [decode_image(r.image_path) for r in pad_records]
    print(f"model {classifier.version}: {classifier.metadata.assessability}")
    print(f"HAM10000 test split: {rate(classifier, ham):.3f} of {len(ham)} rejected")
    print(f"PAD-UFES-20 (clinic photos): {rate(classifier, pad):.3f} of {len(pad)} rejected")
    rejected = 0
    for name, photo in non_skin_photos().items():
        prediction = classifier.classify(photo)
        rejected += not prediction.assessable
        verdict = "REJECTED" if not prediction.assessable else f"accepted as {prediction.decision}"
        print(f"  {name:22s} {verdict:32s} {prediction.not_assessable_reason}")
    print(f"non-skin sample photos: {rejected} of {len(NON_SKIN)} rejected")
    blanks = [np.full((480, 640, 3), value, np.uint8) for value in (0, 128, 255)]
    print(f"blank frames: {rate(classifier, blanks):.3f} rejected")
    rng = np.random.default_rng(0)
    corrupted: dict[str, list[np.ndarray]] = {}
    for image in ham[:100]:
        for kind, version in corruptions(image, rng).items():
            corrupted.setdefault(kind, []).append(version)
    for kind, images in corrupted.items():
        print(f"corrupted lesion images ({kind}): {rate(classifier, images):.3f} of "
              f"{len(images)} rejected")


if __name__ == "__main__":
    main()
