"""The model card's headline figures in the operator's language (Settings; issue 19, point 12)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

Translate = Callable[..., str]


def metrics_lines(tr: Translate, metrics: Mapping[str, Any], threshold: float | None) -> list[str]:
    """One line per evaluation set of the model card, then the referral threshold.

    Args:
        tr: The translation function (``key, **values -> text``).
        metrics: The model card's ``metrics`` (evaluation set → figures).
        threshold: The referral threshold on p(skin cancer), or None.
    """
    lines = []
    for name, values in metrics.items():
        if not isinstance(values, dict):
            continue
        parts = [tr("metrics.images", count=values.get("images", "?"))]
        if "balanced_accuracy" in values:
            parts.append(tr("metrics.balanced_accuracy",
                            value=f"{values['balanced_accuracy']:.3f}"))
        triage = values.get("triage") or {}
        if "cancer_auc" in triage:
            parts.append(tr("metrics.cancer_auc", value=f"{triage['cancer_auc']:.3f}"))
        referral = values.get("referral") or {}
        if "sensitivity" in referral:
            parts.append(tr("metrics.referral", sensitivity=f"{referral['sensitivity']:.3f}",
                            specificity=f"{referral.get('specificity', float('nan')):.3f}"))
        rule = values.get("decision_rule") or {}
        if "coverage" in rule:
            parts.append(tr("metrics.coverage", value=f"{rule['coverage']:.0%}"))
        if "ece" in values:
            parts.append(tr("metrics.ece", value=f"{values['ece']:.3f}"))
        lines.append(tr("metrics.line", name=name, parts=tr("metrics.separator").join(parts)))
    if threshold is not None:
        lines.append(tr("metrics.threshold", value=f"{threshold:.3f}"))
    return lines
