"""How a prediction is put into words on screen, free of Qt (issue 19, point 13).

* :func:`percent` is the one percentage format of every result: it never rounds a probability
  up to "100%" or down to "0%" (``">99%"``, ``"<1%"``); only exact 1 and 0 read so.
* :func:`word_prediction` words the decision so that words, colour and the referral flag agree.
  The triage rule itself is the reference design's (:func:`skinstation.inference.decision.decide`)
  and its decision stays the headline; only its presentation is more cautious: a safety
  referral governs colour, shape and guidance (red triangle, "see a dermatologist promptly"),
  and a "likely benign" decision while a skin-cancer (or pre-cancerous) class is notable
  (:data:`NOTABLE`) is shown amber with that class named, never as a green all-clear with
  "no urgent action".
* :func:`not_assessable_reason` turns the classifier's (English) reason into a text key.
* :func:`band_text`, :func:`unclassified_texts` and :func:`quality_text` word a capture's
  band, why it was not classified, and its quality consistently with the decision.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from skinstation.core.triage import BENIGN, INDETERMINATE, NOT_ASSESSABLE, SKIN_CANCER
from skinstation.inference.caution import CAUTION_GUIDANCE, notable_cancer
from skinstation.inference.caution import NOTABLE as NOTABLE
from skinstation.inference.taxonomy import Taxonomy, load_taxonomy
from skinstation.services.capture import (
    NOT_CLASSIFIED_BAND,
    CaptureAnalysis,
    is_classifiable_band,
)
from skinstation.services.quality_text import quality_reasons

CAUTION_STYLE = INDETERMINATE
"""The style (amber diamond) of a benign decision with a notable skin-cancer probability."""

Translate = Callable[..., str]

_REASONS = (
    ("blank frame", "ui.result.na_reason.blank"),
    ("no colour", "ui.result.na_reason.colour"),
    ("no image structure", "ui.result.na_reason.structure"),
    ("unlike the skin images", "ui.result.na_reason.unlike"),
)


def percent(probability: float) -> str:
    """A probability as an honest whole percentage.

    ``1.0`` → ``"100%"`` and ``0.0`` → ``"0%"`` only when exact; above 99% → ``">99%"``,
    below 1% → ``"<1%"``; otherwise rounded half up (``0.125`` → ``"13%"``).
    """
    if not math.isfinite(probability):
        return "–"
    if probability >= 1.0:
        return "100%"
    if probability <= 0.0:
        return "0%"
    if probability > 0.99:
        return ">99%"
    if probability < 0.01:
        return "<1%"
    return f"{math.floor(probability * 100 + 0.5)}%"


@dataclass(frozen=True)
class Wording:
    """A prediction in words.

    Attributes:
        style: Key of the colour and shape (a decision code, see ``DECISION_STYLE``).
        title: The banner's large words (the rule decision).
        referral: The safety-referral line (with the probability and threshold), or "".
        detail: The caution line naming a notable skin-cancer class, or "".
        guidance: What to do.
    """

    style: str
    title: str
    referral: str
    detail: str
    guidance: str


def word_prediction(tr: Translate, decision: str, referral: bool,
                    group_probs: Mapping[str, float], class_probs: Mapping[str, float],
                    threshold: float | None, taxonomy: Taxonomy | None = None) -> Wording:
    """Word a prediction (see the module docstring for the rules).

    Args:
        tr: Translation function (``key, **values -> text``).
        decision: The rule decision (a group code, ``indeterminate`` or ``not_assessable``).
        referral: The safety-referral flag.
        group_probs: Group → probability.
        class_probs: Fine class → probability.
        threshold: The model's referral threshold (None if unknown, e.g. an older record).
        taxonomy: Class → group map (default: the bundled taxonomy).
    """
    if decision == NOT_ASSESSABLE:
        return Wording(NOT_ASSESSABLE, tr("ui.result.not_assessable"), "", "",
                       tr("guidance.not_assessable"))
    decided = tr(f"decision.{decision}")
    if referral:
        values = {"flag": tr("referral.flag"), "p": percent(group_probs.get(SKIN_CANCER, 0.0))}
        flag = (tr("ui.result.referral_detail", threshold=percent(threshold), **values)
                if threshold is not None else tr("ui.result.referral_detail_plain", **values))
        guidance = "guidance.skin_cancer" if decision == SKIN_CANCER else "guidance.referral"
        return Wording(SKIN_CANCER, decided, flag, "", tr(guidance))
    if decision == SKIN_CANCER:
        return Wording(SKIN_CANCER, decided, "", "", tr("guidance.skin_cancer"))
    notable = notable_cancer(class_probs, group_probs, taxonomy or load_taxonomy())
    if notable is None:
        return Wording(decision, decided, "", "", tr(f"guidance.{decision}"))
    code, probability = notable
    name = tr(f"group.{code}") if code == SKIN_CANCER else f"{tr(f'class.{code}')} ({code})"
    values = {"name": name, "p": percent(probability)}
    detail = (tr("ui.result.cancer_notable_below", threshold=percent(threshold), **values)
              if threshold is not None else tr("ui.result.cancer_notable", **values))
    if decision == BENIGN:
        return Wording(CAUTION_STYLE, decided, "", detail, tr(CAUTION_GUIDANCE))
    return Wording(decision, decided, "", detail, tr(f"guidance.{decision}"))


def not_assessable_reason(reason: str) -> str:
    """Text key of why an image was not assessable (from ``Prediction.not_assessable_reason``)."""
    for start, key in _REASONS:
        if reason.startswith(start):
            return key
    return "ui.result.na_reason.unknown"


def band_name(tr: Translate, band: str) -> str:
    """The band in words (its code when it has no text)."""
    try:
        return tr(f"ui.band.{band}")
    except KeyError:
        return band


def band_text(tr: Translate, band: str, sequence_count: int = 0) -> str:
    """Which light a capture was taken in; for a sequence, also which frame is classified.

    Args:
        tr: Translation function.
        band: The band of the frame shown (of a sequence: the classified one).
        sequence_count: Number of bands of a multispectral sequence (0 for a still).
    """
    if not sequence_count:
        return tr("ui.result.band", band=band_name(tr, band))
    if is_classifiable_band(band):
        return tr("ui.result.band_sequence", count=sequence_count, band=band_name(tr, band))
    return tr("ui.result.band_sequence_none", count=sequence_count)


def unclassified_texts(tr: Translate, analysis: CaptureAnalysis) -> tuple[str, str] | None:
    """``(banner words, guidance)`` of an analysis without a prediction.

    For a band other than white light, or a failed quality check; None when there is a
    prediction or the model failed.
    """
    reason = analysis.not_classified
    if reason is None:
        return None
    if reason == NOT_CLASSIFIED_BAND:
        band = band_name(tr, analysis.band)
        return (tr("ui.result.not_classified_band", band=band),
                tr("ui.result.not_classified_band_help", band=band))
    return tr("ui.result.not_classified_quality"), ""


def quality_text(tr: Translate, analysis: CaptureAnalysis | None) -> str:
    """The capture-quality line, consistent with the result shown beside it.

    Nothing for a band other than white light (the thresholds are set for white light) or a
    model failure; the failed checks; why a good capture was not assessable; else "good".
    """
    if (analysis is None or analysis.model_error is not None
            or analysis.not_classified == NOT_CLASSIFIED_BAND):
        return ""
    if not analysis.quality.passed:
        return "\n".join([tr("ui.result.quality_failed"), *quality_reasons(tr, analysis.quality)])
    prediction = analysis.prediction
    if prediction is not None and not prediction.assessable:
        reason = tr(not_assessable_reason(prediction.not_assessable_reason))
        return tr("ui.result.na_quality", reason=reason)
    return tr("ui.quality.good")
