"""The promotion gate: a retrained candidate replaces the current model only if it is not worse.

Both models are evaluated on the same locked test set. The candidate passes if

* its balanced accuracy (mean per-class sensitivity over the 7 classes) is at least the current
  model's minus ``engine.max_balanced_accuracy_drop``, and
* its **skin-cancer referral sensitivity** — the fraction of true skin cancers (mel, bcc, akiec)
  whose p(skin cancer) reaches the model's *own* fitted referral threshold, i.e. the safety
  flag the station shows — is at least the current model's minus
  ``engine.max_sensitivity_drop``. If either model has no referral threshold, the decision
  rule's cancer sensitivity (cases decided ``skin_cancer``) is compared instead, and the report
  says so.

The referral sensitivity is the one the station shows: a cancer whose image the station
rejects as not assessable counts as missed.

When the engine has other clinics' data (``engine.other_sources``), both checks are applied
again on its test part (``other-clinics``), with the same allowed drops: a candidate that
improves one clinic's images at the cost of everyone else's does not pass.

A metric that cannot be measured (no cancers in the test set: NaN) fails the gate: a model is
never promoted on evidence that does not exist.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any


@dataclass(frozen=True)
class GateMetrics:
    """The figures the gate compares, from one model's locked-test evaluation."""

    balanced_accuracy: float
    referral_sensitivity: float | None
    rule_cancer_sensitivity: float
    images: int

    @classmethod
    def from_metrics(cls, metrics: dict[str, Any]) -> GateMetrics:
        """Pick the gate's figures out of :func:`compute_metrics` output.

        A figure stored as null (NaN kept as valid JSON) is NaN again: not measured.
        """
        referral = metrics.get("referral") or {}
        return cls(
            balanced_accuracy=_number(metrics["balanced_accuracy"]),
            referral_sensitivity=(  # no threshold: None; a threshold, nothing measured: NaN
                None if referral.get("threshold") is None and referral.get("sensitivity") is None
                else _number(referral.get("sensitivity"))
            ),
            rule_cancer_sensitivity=_number(metrics["triage"]["rule_cancer_sensitivity"]),
            images=int(metrics["images"]),
        )


@dataclass(frozen=True)
class GateDecision:
    """The gate's verdict with every number it used."""

    promote: bool
    sensitivity_measure: str
    reasons: tuple[str, ...]
    candidate: GateMetrics
    current: GateMetrics
    max_balanced_accuracy_drop: float
    max_sensitivity_drop: float
    other_candidate: GateMetrics | None = None
    other_current: GateMetrics | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON form for the job report."""
        data = asdict(self)
        data["reasons"] = list(self.reasons)
        return data


def _check(name: str, candidate: float, current: float, margin: float,
           where: str = "the locked test set") -> str | None:
    """Return a failure reason, or None if ``candidate >= current - margin``."""
    if math.isnan(candidate) or math.isnan(current):
        return f"{name} cannot be measured on {where} (candidate {candidate}, " \
               f"current {current})"
    floor = current - margin
    if candidate + 1e-12 < floor:
        return (f"{name} {candidate:.4f} is below the current model's {current:.4f} minus the "
                f"allowed drop {margin:.4f} (floor {floor:.4f})")
    return None


def decide(
    candidate: GateMetrics,
    current: GateMetrics,
    *,
    max_balanced_accuracy_drop: float,
    max_sensitivity_drop: float,
    other_candidate: GateMetrics | None = None,
    other_current: GateMetrics | None = None,
) -> GateDecision:
    """Apply the gate (see the module docstring); ``other_*``: the other clinics' test."""
    use_referral = (candidate.referral_sensitivity is not None
                    and current.referral_sensitivity is not None)
    measure = "referral_sensitivity" if use_referral else "rule_cancer_sensitivity"
    sets = [("", "the locked test set", candidate, current)]
    if other_candidate is not None and other_current is not None:
        sets.append(("other clinics: ", "the other clinics' test set", other_candidate,
                     other_current))
    reasons = []
    for prefix, where, cand, curr in sets:
        reasons += [f"{prefix}{r}" for r in (
            _check("balanced accuracy", cand.balanced_accuracy, curr.balanced_accuracy,
                   max_balanced_accuracy_drop, where),
            _check(f"skin-cancer {measure.replace('_', ' ')}", _sensitivity(cand, measure),
                   _sensitivity(curr, measure), max_sensitivity_drop, where),
        ) if r is not None]
    return GateDecision(not reasons, measure, tuple(reasons), candidate, current,
                        max_balanced_accuracy_drop, max_sensitivity_drop, other_candidate,
                        other_current)


def _number(value: Any) -> float:
    return float("nan") if value is None else float(value)


def _sensitivity(metrics: GateMetrics, measure: str) -> float:
    value = getattr(metrics, measure)
    return float("nan") if value is None else float(value)
