"""``python -m skinstation.training.imagenet_weights``: prime torchvision's cache offline."""

from __future__ import annotations

import sys

from skinstation.inference.imagenet import WeightsUnavailableError, ensure_imagenet_weights


def main(argv: list[str] | None = None) -> int:
    """Copy the packaged ImageNet weights into torchvision's cache; print where they are."""
    argv = sys.argv[1:] if argv is None else argv
    try:
        path = ensure_imagenet_weights("mobilenet_v2")
    except WeightsUnavailableError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    if "--quiet" not in argv:
        print(f"[setup] ImageNet MobileNetV2 weights ready at {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
