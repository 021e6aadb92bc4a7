"""Optional ONNX export of a model file's network (for runtimes without PyTorch).

The exported graph maps a preprocessed (N, 3, S, S) float32 batch to calibrated class
probabilities (temperature applied). Preprocessing, the decision rule, the referral threshold
and the assessability check stay in SkinStation: the model file remains the source of truth.
"""

from __future__ import annotations

from pathlib import Path

import torch

from skinstation.inference.classifier import Classifier


class _CalibratedNetwork(torch.nn.Module):
    def __init__(self, network: torch.nn.Module, temperature: float) -> None:
        super().__init__()
        self.network = network
        self.temperature = temperature

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return torch.softmax(self.network(images) / self.temperature, dim=1)


def export_onnx(model_path: str | Path, output: str | Path, opset: int = 17) -> Path:
    """Export the verified model file's network + temperature to ``output`` (ONNX).

    Returns:
        The written path.
    """
    classifier = Classifier.load(model_path, warm_up=False)
    size = classifier.preprocess_config.size
    wrapper = _CalibratedNetwork(classifier.network, classifier.temperature).eval()
    output = Path(output)
    torch.onnx.export(
        wrapper, (torch.zeros(1, 3, size, size),), str(output), input_names=["images"],
        output_names=["probabilities"], dynamic_axes={"images": {0: "batch"},
                                                      "probabilities": {0: "batch"}},
        opset_version=opset, dynamo=False,
    )
    return output
