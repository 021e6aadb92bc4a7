"""Is this image something the model can judge? An out-of-distribution score and threshold.

Method ``mahalanobis`` (Lee et al., 2018): the pooled network features are projected onto
their first ``k`` principal components (fitted on training images), and the score is the
smallest Mahalanobis distance to a class mean under the shared within-class covariance.
Method ``subspace`` (the residual of ViM, Wang et al., 2022, made scale-free): the part of the
centred features that lies outside the training features' principal subspace, relative to the
feature norm. Photos that are not skin close-ups put much of their feature energy in
directions the training images never used, even when they sit near a class mean inside the
subspace (where Mahalanobis alone accepts them); this is the default.
Method ``energy`` (Liu et al., 2020): ``-T·logsumexp(logits / T)``. Higher scores mean less
like the training data. The threshold is fitted on in-distribution validation images at a
stated false-rejection rate; above it the image is reported as "not assessable".

The fitted statistics travel inside the model file as tensors named ``assess.*``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np
import torch

STATE_PREFIX = "assess."
MIN_CONTRAST = 6.0
MIN_COLOURFULNESS = 4.0
MIN_STRUCTURE = 0.35
STATISTICAL_METHODS = ("mahalanobis", "subspace")


def image_problem(image: np.ndarray) -> str | None:
    """Simple checks no skin close-up fails: a blank, colourless or structureless image.

    A dermatoscope or clinic camera delivers colour; skin always has some chroma. A real
    photograph's neighbouring pixels are strongly correlated (at 128 px: 0.69 or more on a
    sample of 201 HAM10000 images, 0.57 or more on all 686 PAD-UFES-20 photos), while sensor
    noise or a scrambled frame has almost none (0.15 or less for pixel-shuffled lesions). These
    run before the learned score, on the decoded RGB image.

    Returns:
        Why the image cannot be assessed, or None.
    """
    small = np.asarray(image[:: max(1, image.shape[0] // 128), :: max(1, image.shape[1] // 128)],
                       np.float64)
    if small.std() < MIN_CONTRAST:
        return f"blank frame: pixel contrast {small.std():.1f} below {MIN_CONTRAST}"
    red, green, blue = small[..., 0], small[..., 1], small[..., 2]
    rg, yb = red - green, 0.5 * (red + green) - blue
    colourfulness = float(np.hypot(rg.std(), yb.std()) + 0.3 * np.hypot(rg.mean(), yb.mean()))
    if colourfulness < MIN_COLOURFULNESS:
        return f"no colour: colourfulness {colourfulness:.1f} below {MIN_COLOURFULNESS}"
    structure = neighbour_correlation(image)
    if structure < MIN_STRUCTURE:
        return (f"no image structure: neighbouring-pixel correlation {structure:.2f} below "
                f"{MIN_STRUCTURE} (noise or a corrupted frame)")
    return None


def neighbour_correlation(image: np.ndarray, side: int = 128) -> float:
    """The smaller of the horizontal and vertical lag-1 correlations of the grey image.

    The image is first area-averaged to ``side`` pixels on its long side, so the figure does
    not depend on the camera's resolution. A flat image (no variance) counts as structured.
    """
    height, width = image.shape[:2]
    factor = min(1.0, side / max(height, width))
    size = (max(2, round(width * factor)), max(2, round(height * factor)))
    grey = cv2.resize(np.ascontiguousarray(image), size,
                      interpolation=cv2.INTER_AREA).astype(np.float64).mean(axis=2)

    def correlation(a: np.ndarray, b: np.ndarray) -> float:
        a, b = a - a.mean(), b - b.mean()
        norm = float(np.sqrt((a * a).sum() * (b * b).sum()))
        return float((a * b).sum() / norm) if norm else 1.0

    return min(correlation(grey[:, :-1], grey[:, 1:]), correlation(grey[:-1], grey[1:]))


@dataclass
class AssessabilityModel:
    """Scores images for out-of-distribution-ness and applies the rejection threshold.

    Attributes:
        method: ``subspace``, ``mahalanobis``, ``energy`` or ``none`` (accept everything).
        threshold: Scores above it are rejected (None = never reject).
        temperature: Temperature for the energy score.
        mean: Feature mean (d,) for the PCA projection.
        projection: (d, k) principal directions.
        class_means: (classes, k) class means in the projected space.
        precision: (k, k) inverse shared covariance.
    """

    method: str = "none"
    threshold: float | None = None
    temperature: float = 1.0
    mean: np.ndarray | None = None
    projection: np.ndarray | None = None
    class_means: np.ndarray | None = None
    precision: np.ndarray | None = None

    @classmethod
    def fit_mahalanobis(
        cls, features: np.ndarray, labels: np.ndarray, num_classes: int, components: int = 64,
        shrinkage: float = 0.05, method: str = "mahalanobis",
    ) -> AssessabilityModel:
        """Fit PCA, class means and the shrunk shared covariance on training features.

        ``method`` picks the score the fitted statistics serve: ``mahalanobis`` or
        ``subspace`` (both use the same PCA).
        """
        features = np.asarray(features, np.float64)
        mean = features.mean(0)
        centred = features - mean
        _, _, vt = np.linalg.svd(centred, full_matrices=False)
        components = min(components, vt.shape[0])
        projection = vt[:components].T
        projected = centred @ projection
        class_means = np.stack([
            projected[labels == c].mean(0) if np.any(labels == c) else np.zeros(components)
            for c in range(num_classes)
        ])
        residual = projected - class_means[labels]
        covariance = residual.T @ residual / max(len(residual) - 1, 1)
        identity = np.eye(components) * np.trace(covariance) / components
        covariance = (1 - shrinkage) * covariance + shrinkage * identity
        if method not in STATISTICAL_METHODS:
            raise ValueError(f"unknown assessability method {method!r}")
        return cls(method, None, 1.0, mean, projection, class_means,
                   np.linalg.inv(covariance))

    def scores(self, pooled: np.ndarray, logits: np.ndarray) -> list[float | None]:
        """Out-of-distribution score of each image (None for method ``none``)."""
        if self.method == "none":
            return [None] * len(logits)
        if self.method == "energy":
            scaled = np.asarray(logits, np.float64) / self.temperature
            peak = scaled.max(1, keepdims=True)
            energy = -self.temperature * (peak[:, 0] + np.log(np.exp(scaled - peak).sum(1)))
            return [float(v) for v in energy]
        if self.method == "mahalanobis":
            assert self.mean is not None and self.projection is not None
            assert self.class_means is not None and self.precision is not None
            z = (np.asarray(pooled, np.float64) - self.mean) @ self.projection
            diff = z[:, None, :] - self.class_means[None, :, :]
            distances = np.einsum("nck,kl,ncl->nc", diff, self.precision, diff)
            return [float(v) for v in distances.min(1)]
        if self.method == "subspace":
            assert self.mean is not None and self.projection is not None
            features = np.asarray(pooled, np.float64)
            centred = features - self.mean
            residual = centred - (centred @ self.projection) @ self.projection.T
            norms = np.maximum(np.linalg.norm(features, axis=1), 1e-12)
            return [float(v) for v in np.linalg.norm(residual, axis=1) / norms]
        raise ValueError(f"unknown assessability method {self.method!r}")

    def accepts(self, score: float | None) -> bool:
        """True unless the score is above the threshold."""
        return score is None or self.threshold is None or score <= self.threshold

    def metadata(self, **extra: Any) -> dict[str, Any]:
        """The model-file metadata entry (method, threshold, temperature + ``extra``)."""
        return {"method": self.method, "threshold": self.threshold,
                "temperature": self.temperature, **extra}

    def state(self) -> dict[str, torch.Tensor]:
        """Tensors to store in the model file."""
        if self.method not in STATISTICAL_METHODS:
            return {}
        arrays = {"mean": self.mean, "projection": self.projection,
                  "class_means": self.class_means, "precision": self.precision}
        return {STATE_PREFIX + k: torch.from_numpy(np.asarray(v, np.float32))
                for k, v in arrays.items()}

    @classmethod
    def from_state(cls, state: Mapping[str, torch.Tensor],
                   metadata: Mapping[str, Any]) -> AssessabilityModel:
        """Rebuild from model-file tensors and metadata (``none`` if the model has none)."""
        method = metadata.get("method", "none")
        threshold = metadata.get("threshold")
        model = cls(method, None if threshold is None else float(threshold),
                    float(metadata.get("temperature", 1.0)))
        if method in STATISTICAL_METHODS:
            try:
                arrays = {k: state[STATE_PREFIX + k].double().numpy()
                          for k in ("mean", "projection", "class_means", "precision")}
            except KeyError as exc:
                raise ValueError(f"model file lacks assessability tensor {exc}") from None
            model.mean, model.projection = arrays["mean"], arrays["projection"]
            model.class_means, model.precision = arrays["class_means"], arrays["precision"]
        return model
