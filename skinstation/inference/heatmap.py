"""Explanation heatmaps (Grad-CAM, Selvaraju et al. 2017) the UI can overlay on a capture.

The heatmap shows which regions raised the score of the explained class. It is computed on the
model's own input (the prepared square image), so :class:`Explanation` carries that image too.
A heatmap is an aid to reading the result, not evidence of a diagnosis.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
import torch

from skinstation.inference.classifier import Classifier
from skinstation.inference.network import classifier_of, features_of
from skinstation.inference.preprocessing import prepare, to_model_input


@dataclass(frozen=True)
class Explanation:
    """A Grad-CAM heatmap for one class of one image.

    Attributes:
        target_class: Fine class explained.
        prepared: The square RGB uint8 image the model saw.
        heatmap: Float32 (S, S) in [0, 1], aligned with ``prepared``.
    """

    target_class: str
    prepared: np.ndarray
    heatmap: np.ndarray

    def overlay(self, alpha: float = 0.45) -> np.ndarray:
        """RGB uint8 image: ``prepared`` blended with a colour-mapped heatmap."""
        colours = cv2.applyColorMap((self.heatmap * 255).astype(np.uint8), cv2.COLORMAP_JET)
        colours = cv2.cvtColor(colours, cv2.COLOR_BGR2RGB)
        return cv2.addWeighted(self.prepared, 1 - alpha, colours, alpha, 0)


def explain(classifier: Classifier, image: np.ndarray, target_class: str | None = None
            ) -> Explanation:
    """Grad-CAM of ``target_class`` (default: the most probable class) on the last conv block.

    Args:
        classifier: A loaded classifier.
        image: Decoded RGB uint8 image.
        target_class: Fine class code to explain.

    Returns:
        The explanation.
    """
    config = classifier.preprocess_config
    prepared = prepare(image, config)
    batch = classifier.as_input(to_model_input(prepared, config)[None])
    network = classifier.network
    with torch.enable_grad():
        maps: torch.Tensor = features_of(network)(batch)
        activations = maps.detach().requires_grad_(True)
        pooled = torch.flatten(torch.nn.functional.adaptive_avg_pool2d(activations, 1), 1)
        logits: torch.Tensor = classifier_of(network)(pooled)
        classes = list(classifier.taxonomy.classes)
        index = int(logits.argmax()) if target_class is None else classes.index(target_class)
        (gradients,) = torch.autograd.grad(logits[0, index], activations)
    weights = gradients.mean(dim=(2, 3), keepdim=True)
    cam = torch.relu((weights * activations).sum(1))[0].detach().numpy()
    cam = cv2.resize(cam, (config.size, config.size), interpolation=cv2.INTER_CUBIC)
    cam = np.clip(cam, 0, None)
    peak = float(cam.max())
    heatmap = (cam / peak if peak > 0 else cam).astype(np.float32)
    return Explanation(classes[index], prepared, heatmap)
