import numpy as np
import pytest
import torch

from skinstation.inference.network import Tail, Trunk, build_network
from skinstation.inference.taxonomy import load_taxonomy
from skinstation.training.sources import load_manifest
from skinstation.training.trainer import TrainConfig, class_weights, train_classifier


def test_class_weights_balance_the_loss():
    labels = np.array([0] * 90 + [1] * 10)
    weights = class_weights(labels, 2, "balanced")
    assert weights[1] / weights[0] == pytest.approx(9.0)
    assert float((weights * torch.tensor([90.0, 10.0])).sum()) == pytest.approx(100.0)
    assert class_weights(labels, 2, "sqrt")[1] / class_weights(labels, 2, "sqrt")[0] == \
        pytest.approx(3.0)
    with pytest.raises(ValueError, match="unknown class weighting"):
        class_weights(labels, 2, "log")


def test_trunk_and_tail_compose_to_the_full_network():
    torch.manual_seed(0)
    network = build_network("mobilenet_v2", 7, pretrained=False).eval()
    images = torch.randn(2, 3, 96, 96)
    with torch.inference_mode():
        whole = network(images)
        split = Tail(network, 14)(Trunk(network, 14)(images))
    torch.testing.assert_close(whole, split)


def test_imagenet_weights_load_offline_with_hash_check():
    from skinstation.inference.imagenet import checkpoint_path, ensure_imagenet_weights
    path = ensure_imagenet_weights("mobilenet_v2")
    assert path == checkpoint_path("mobilenet_v2") and path.name == "mobilenet_v2-b0353104.pth"
    network = build_network("mobilenet_v2", 7, pretrained=True)
    reference = torch.load(path, weights_only=True)
    torch.testing.assert_close(network.features[0][0].weight, reference["features.0.0.weight"])


def test_tiny_training_run_loss_falls_and_is_reproducible(tiny_manifest, tmp_path):
    records, _ = load_manifest(tiny_manifest)
    classes = load_taxonomy().classes
    config = TrainConfig(views=2, head_epochs=15, finetune_epochs=3, batch_size=16,
                         finetune_lr=1e-3)
    lines = []
    first = train_classifier(records[:35], records[35:], classes, config, tmp_path / "c",
                             log=lines.append)
    head_losses = [h["loss"] for h in first.history if h["phase"] == 0.0]
    tune_losses = [h["loss"] for h in first.history if h["phase"] == 1.0]
    assert head_losses[-1] < head_losses[0] * 0.8
    assert tune_losses[-1] < tune_losses[0]
    assert any("ETA" in line for line in lines)
    second = train_classifier(records[:35], records[35:], classes, config, tmp_path / "c2",
                              log=lambda m: None)
    for key, value in first.network.state_dict().items():
        torch.testing.assert_close(value, second.network.state_dict()[key])


def test_interrupted_finetune_resumes_from_checkpoint(tiny_manifest, tmp_path):
    records, _ = load_manifest(tiny_manifest)
    classes = load_taxonomy().classes
    config = TrainConfig(views=1, head_epochs=2, finetune_epochs=2, batch_size=16)
    cache = tmp_path / "cache"
    train_classifier(records[:35], records[35:], classes, config, cache, log=lambda m: None)
    checkpoints = list(cache.glob("finetune-*.pt"))
    assert len(checkpoints) == 1
    lines = []
    train_classifier(records[:35], records[35:], classes, config, cache, log=lines.append)
    assert any("resuming after epoch 2" in line for line in lines)
    assert not any(line.startswith("[features") for line in lines)  # features came from cache
