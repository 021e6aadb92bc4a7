"""The on-device classifier: a verified model file turned into triage predictions.

``Classifier.load(path)`` verifies the model file, builds the network, and warms it up once.
``classify(rgb)`` runs the model file's own preprocessing, the network, temperature scaling,
the larger-than-the-others decision rule, the safety referral threshold and the
assessability (out-of-distribution) check, and returns a :class:`Prediction`.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import torch

from skinstation.core.i18n import text
from skinstation.core.triage import BENIGN, INDETERMINATE, NOT_ASSESSABLE
from skinstation.inference.assessability import AssessabilityModel, image_problem
from skinstation.inference.caution import CAUTION_GUIDANCE, needs_caution
from skinstation.inference.decision import decide
from skinstation.inference.model_file import ModelMetadata, load_model_file
from skinstation.inference.network import build_network, classifier_of, features_of
from skinstation.inference.preprocessing import PreprocessConfig, preprocess
from skinstation.inference.taxonomy import SKIN_CANCER, Taxonomy


def softmax(logits: np.ndarray, temperature: float = 1.0) -> npt.NDArray[np.float64]:
    """Row-wise softmax of ``logits / temperature`` in float64."""
    scaled = np.asarray(logits, np.float64) / temperature
    scaled = scaled - scaled.max(axis=-1, keepdims=True)
    exp = np.exp(scaled)
    probs: npt.NDArray[np.float64] = exp / exp.sum(axis=-1, keepdims=True)
    return probs


def predicted_classes(probs: np.ndarray, offsets: np.ndarray | None = None
                      ) -> npt.NDArray[np.intp]:
    """Argmax of ``log(probs) + offsets`` per row (plain argmax without offsets)."""
    scores = np.log(np.clip(np.asarray(probs, np.float64), 1e-300, None))
    if offsets is not None:
        scores = scores + offsets
    indices: npt.NDArray[np.intp] = scores.argmax(axis=-1)
    return indices


@dataclass(frozen=True)
class Prediction:
    """One classification, as every interface (station, engine, API, CLI) reports it.

    Attributes:
        class_probs: Fine class → calibrated probability (empty when not assessable).
        group_probs: Triage group → probability (sum of its classes).
        decision: Rule decision: a group code, ``indeterminate`` or ``not_assessable``.
        referral: True when p(skin cancer) ≥ the model's referral threshold.
        referral_threshold: That threshold (None if the model has none).
        assessable: False when the image is not a skin close-up the model can judge.
        assessability_score: Out-of-distribution score (higher = less like training data).
        top_class: Most probable fine class ("" when not assessable).
        guidance_key: Text key of the guidance shown (the more cautious of rule and referral).
        model_version: Version of the model file used.
        seconds: Preprocessing + model + decision time.
        not_assessable_reason: Why the image was not assessed ("" when it was).
    """

    class_probs: dict[str, float]
    group_probs: dict[str, float]
    decision: str
    referral: bool
    referral_threshold: float | None
    assessable: bool
    assessability_score: float | None
    top_class: str
    guidance_key: str
    model_version: str
    seconds: float
    not_assessable_reason: str = ""

    def guidance(self, language: str = "en") -> str:
        """Guidance text in ``language``."""
        return text(self.guidance_key, language)

    def decision_text(self, language: str = "en") -> str:
        """The decision in words."""
        return text(f"decision.{self.decision}", language)

    def to_dict(self, language: str = "en") -> dict[str, Any]:
        """JSON-ready form including the guidance and the not-a-diagnosis notice."""
        data = asdict(self)
        data["decision_text"] = self.decision_text(language)
        data["guidance"] = self.guidance(language)
        data["notice"] = text("notice", language)
        data["referral_text"] = text("referral.flag", language) if self.referral else ""
        return data


def guidance_key(decision: str, referral: bool, caution: bool = False) -> str:
    """The most cautious guidance of the rule decision, the referral flag and the caution.

    Args:
        decision: The rule decision.
        referral: The safety-referral flag.
        caution: A benign decision with a notable skin-cancer probability
            (:func:`skinstation.inference.caution.needs_caution`).
    """
    if decision == NOT_ASSESSABLE:
        return "guidance.not_assessable"
    if decision == SKIN_CANCER:
        return "guidance.skin_cancer"
    if referral:
        return "guidance.referral"
    if caution and decision == BENIGN:
        return CAUTION_GUIDANCE
    return f"guidance.{decision}"


class Classifier:
    """A loaded, verified model ready to classify RGB images.

    The network runs in PyTorch's channels-last memory layout (CPU convolutions ~15% faster
    on the bundled MobileNetV2, same outputs to ~1e-6: ``tests/test_inference_speed_paths.py``);
    :attr:`CHANNELS_LAST` turns that off for comparisons (``bench/bench_capture_latency.py``).
    """

    CHANNELS_LAST = True

    def __init__(self, metadata: ModelMetadata, state: dict[str, torch.Tensor],
                 threads: int | None = 2) -> None:
        if threads:
            torch.set_num_threads(threads)
        self.metadata = metadata
        self.taxonomy = Taxonomy.from_dict(metadata.taxonomy)
        self.preprocess_config = PreprocessConfig.from_dict(metadata.preprocess)
        if list(self.taxonomy.classes) != list(metadata.classes):
            raise ValueError("model file classes disagree with its taxonomy")
        network_state = {k: v for k, v in state.items() if not k.startswith("assess.")}
        self.network = build_network(metadata.architecture, len(metadata.classes))
        self.network.load_state_dict(network_state)
        self.network.eval()
        self.channels_last = self.CHANNELS_LAST
        if self.channels_last:
            self.network = self.network.to(memory_format=torch.channels_last)
        self.temperature = float(metadata.temperature)
        bias = list(metadata.class_bias) or [0.0] * len(metadata.classes)
        if len(bias) != len(metadata.classes):
            raise ValueError("model file class_bias must have one offset per class")
        self.decision_offsets = np.asarray(bias, np.float64)
        prior = list(metadata.training_log_prior) or [0.0] * len(metadata.classes)
        if len(prior) != len(metadata.classes):
            raise ValueError("model file training_log_prior must have one value per class")
        self.log_prior = np.asarray(prior, np.float64)
        self.assessability = AssessabilityModel.from_state(state, metadata.assessability)
        threshold = metadata.referral.get("threshold")
        self.referral_threshold = None if threshold is None else float(threshold)
        self._group_matrix = self.taxonomy.group_matrix()

    @classmethod
    def load(cls, path: str | Path, threads: int | None = 2, warm_up: bool = True) -> Classifier:
        """Load and verify a model file; optionally run one warm-up inference."""
        metadata, state = load_model_file(path)
        classifier = cls(metadata, state, threads)
        if warm_up:
            classifier.warm_up()
        return classifier

    @property
    def version(self) -> str:
        """The model version string."""
        return self.metadata.model_version

    def warm_up(self) -> None:
        """Run one dummy inference so the first real capture is not slowed by lazy init."""
        size = self.preprocess_config.size
        self.classify(np.full((size, size, 3), 128, np.uint8))

    def as_input(self, batch: np.ndarray) -> torch.Tensor:
        """A preprocessed (N, 3, S, S) float32 batch as the network's input tensor."""
        tensor = torch.from_numpy(batch)
        if self.channels_last:
            tensor = tensor.contiguous(memory_format=torch.channels_last)
        return tensor

    @torch.inference_mode()
    def forward(self, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Network logits and pooled features of a preprocessed (N, 3, S, S) batch."""
        features: torch.Tensor = features_of(self.network)(self.as_input(batch))
        pooled = torch.flatten(torch.nn.functional.adaptive_avg_pool2d(features, 1), 1)
        logits: torch.Tensor = classifier_of(self.network)(pooled)
        return logits.double().numpy(), pooled.double().numpy()

    def probabilities(self, logits: np.ndarray) -> np.ndarray:
        """Calibrated class probabilities: softmax((logits + training log prior) / T).

        A logit-adjusted network's logits leave out the training prior; it is added back
        (as calibration was fitted) before the temperature.
        """
        return softmax(np.asarray(logits, np.float64) + self.log_prior, self.temperature)

    def predicted_classes(self, probs: np.ndarray) -> np.ndarray:
        """Index of the predicted fine class: argmax of log p + the model's decision offsets.

        The offsets (all zero unless the model file sets ``class_bias``) are the
        cost-sensitive part of the fine-class decision, fitted on validation data; the
        probabilities themselves stay calibrated. For a logit-adjusted model the training
        prior the probabilities carry is taken out of the decision again (``- log prior /
        T``): its decision stays the balanced one it was trained for, and the offsets are
        fitted on that balanced decision.
        """
        return predicted_classes(probs, self.decision_offsets
                                 - self.log_prior / self.temperature)

    def classify(self, image: np.ndarray) -> Prediction:
        """Classify one decoded RGB uint8 image."""
        return self.classify_batch([image])[0]

    def classify_batch(self, images: Sequence[np.ndarray]) -> list[Prediction]:
        """Classify several decoded RGB uint8 images (one forward pass)."""
        started = time.perf_counter()
        problems = [image_problem(image) for image in images]
        batch = np.stack([preprocess(image, self.preprocess_config) for image in images])
        logits, pooled = self.forward(batch)
        return self.predictions_from_outputs(logits, pooled, started, problems)

    def predictions_from_outputs(
        self, logits: np.ndarray, pooled: np.ndarray, started: float | None = None,
        problems: Sequence[str | None] | None = None,
    ) -> list[Prediction]:
        """Turn network outputs into predictions (decision, referral, assessability).

        Args:
            logits: Network logits (N, classes).
            pooled: Pooled features (N, d) for the assessability score.
            started: ``perf_counter()`` at the start, to report per-image time.
            problems: Result of :func:`image_problem` per image (None: not checked).
        """
        probs = self.probabilities(logits)
        groups = probs @ self._group_matrix
        scores = self.assessability.scores(pooled, logits)
        problems = list(problems) if problems is not None else [None] * len(probs)
        elapsed = (time.perf_counter() - started) / len(probs) if started else 0.0
        return [self._prediction(p, g, s, q, elapsed)
                for p, g, s, q in zip(probs, groups, scores, problems, strict=True)]

    def _prediction(self, probs: np.ndarray, groups: np.ndarray, score: float | None,
                    problem: str | None, seconds: float) -> Prediction:
        if problem is None and not self.assessability.accepts(score):
            problem = (f"unlike the skin images the model was trained on (score {score:.3g} "
                       f"above {self.assessability.threshold:.3g})")
        group_probs = {g: float(groups[i]) for i, g in enumerate(self.taxonomy.groups)}
        if problem is not None:
            return Prediction({}, {}, NOT_ASSESSABLE, False, self.referral_threshold, False,
                              score, "", guidance_key(NOT_ASSESSABLE, False), self.version,
                              seconds, problem)
        decision = decide(group_probs)
        referral = (self.referral_threshold is not None
                    and group_probs[SKIN_CANCER] >= self.referral_threshold)
        class_probs = {c: float(probs[i]) for i, c in enumerate(self.taxonomy.classes)}
        top = self.taxonomy.classes[int(self.predicted_classes(probs[None])[0])]
        caution = needs_caution(decision, bool(referral), class_probs, group_probs,
                                self.taxonomy)
        return Prediction(class_probs, group_probs, decision, bool(referral),
                          self.referral_threshold, True, score, top,
                          guidance_key(decision, bool(referral), caution), self.version,
                          seconds)


__all__ = [
    "INDETERMINATE", "NOT_ASSESSABLE", "Classifier", "Prediction", "guidance_key", "softmax",
]
