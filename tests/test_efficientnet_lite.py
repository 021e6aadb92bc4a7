"""EfficientNet-Lite0, the second kept backbone: its ImageNet weights load (weights_only, hash
checked) onto the project's network interface, it pads as TensorFlow did, its input scaling is
the one its batch-norm statistics were learnt with, and the project's pipeline trains, saves,
loads and classifies with it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from skinstation.inference.classifier import Classifier
from skinstation.inference.efficientnet_lite import (
    INPUT_MEAN,
    INPUT_STD,
    SameConv2d,
    efficientnet_lite0,
    weights_path,
)
from skinstation.inference.network import Tail, Trunk, build_network, get_architecture
from skinstation.inference.preprocessing import IMAGENET_MEAN, IMAGENET_STD, PreprocessConfig


def test_the_imagenet_weights_are_the_packaged_ones() -> None:
    model = efficientnet_lite0(7, pretrained=True)
    source = torch.load(weights_path(), map_location="cpu", weights_only=True)
    assert torch.equal(model.features[0].conv.weight, source["_conv_stem.weight"])
    assert torch.equal(model.features[4].depthwise.conv.weight,
                       source["_blocks.3._depthwise_conv.weight"])
    assert torch.equal(model.features[17].bn.running_var, source["_bn1.running_var"])
    assert model.classifier[1].out_features == 7
    # 4.65 M parameters in all, less ImageNet's 1000-class head
    assert sum(p.numel() for p in model.features.parameters()) == 3_371_008


def test_same_padding_is_asymmetric_on_stride_two_as_in_tensorflow() -> None:
    conv = SameConv2d(1, 1, 3, 2, bias=False)
    conv.weight.data.zero_()
    conv.weight.data[0, 0, 0, 0] = 1.0  # picks the top-left input of each window
    image = torch.arange(16.0).reshape(1, 1, 4, 4)
    # SAME on 4 → 2 with k3 s2 pads 0 before and 1 after: windows start at 0 and 2
    assert conv(image).flatten().tolist() == [0.0, 2.0, 8.0, 10.0]


def test_the_input_scaling_matches_what_its_batch_norm_learnt(ham_dir: Path) -> None:
    """Stem outputs on real photos sit closer to the stem's BN statistics with [-1, 1] inputs."""
    stem = efficientnet_lite0(7, pretrained=True).features[0]
    files = sorted((ham_dir / "images").glob("*.jpg"))[:24]
    pixels = np.stack([np.asarray(Image.open(f).convert("RGB").resize((224, 224)),
                                  np.float32) / 255 for f in files])
    x = torch.from_numpy(pixels).permute(0, 3, 1, 2)

    def distance(mean: tuple[float, ...], std: tuple[float, ...]) -> float:
        normed = (x - torch.tensor(mean)[:, None, None]) / torch.tensor(std)[:, None, None]
        with torch.no_grad():
            out = stem.conv(normed)
        mu = out.mean((0, 2, 3))
        return float(((mu - stem.bn.running_mean) ** 2 / (stem.bn.running_var + 1e-3)).mean())

    assert distance(INPUT_MEAN, INPUT_STD) < 0.5 * distance(IMAGENET_MEAN, IMAGENET_STD)
    arch = get_architecture("efficientnet_lite0")
    assert (arch.input_mean, arch.input_std) == (INPUT_MEAN, INPUT_STD)


def test_trunk_and_tail_compose_to_the_whole_network() -> None:
    network = build_network("efficientnet_lite0", 7).eval()
    blocks = get_architecture("efficientnet_lite0").trunk_blocks
    images = torch.randn(2, 3, 192, 192)
    with torch.no_grad():
        whole = network(images)
        split = Tail(network, blocks)(Trunk(network, blocks)(images))
    assert torch.allclose(whole, split, atol=1e-5)


@pytest.mark.slow
def test_the_pipeline_trains_saves_loads_and_classifies_with_it(
        tmp_path: Path, tiny_manifest: Path, ham_dir: Path) -> None:
    from skinstation.training.pipeline import BuildRequest, build_model
    from skinstation.training.trainer import TrainConfig

    arch = get_architecture("efficientnet_lite0")
    preprocess = PreprocessConfig(size=160, mean=arch.input_mean, std=arch.input_std)
    config = TrainConfig(architecture="efficientnet_lite0", preprocess=preprocess, views=1,
                         head_epochs=2, finetune_epochs=1, batch_size=16,
                         trunk_blocks=arch.trunk_blocks)
    request = BuildRequest(source=f"manifest:{tiny_manifest}", split_path=tmp_path / "split.csv",
                           output=tmp_path / "lite0.safetensors", config=config,
                           cache_dir=tmp_path / "cache", version="tiny-lite0")
    metadata = build_model(request, log=lambda message: None)
    assert metadata.architecture == "efficientnet_lite0"
    classifier = Classifier.load(request.output)
    image = np.asarray(Image.open(next((ham_dir / "images").glob("*.jpg"))).convert("RGB"))
    prediction = classifier.classify(image)
    assert prediction.model_version == "tiny-lite0"
    if prediction.assessable:
        assert sum(prediction.class_probs.values()) == pytest.approx(1.0, abs=1e-5)
