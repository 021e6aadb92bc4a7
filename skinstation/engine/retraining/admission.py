"""The promotion gate for a candidate that did not come from a retraining job (an import).

``skinstation engine models gate VERSION``: the engine evaluates the candidate *and* the
current model itself, with the same code, on the locked test set (and on the other clinics'
test set when ``engine.other_sources`` names one) and applies :func:`gate.decide` with the
engine's allowed drops. The metrics the file claims are never used: an imported file could
claim anything. The measured figures are kept as the version's ``gate_metrics`` with the
gate's report; the candidate is promoted and deployed if it passes, rejected otherwise.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from skinstation.engine.database import EngineDatabase
from skinstation.engine.errors import InvalidError
from skinstation.engine.models import service as registry
from skinstation.engine.models.models import ModelStatus
from skinstation.engine.retraining.gate import GateMetrics, decide
from skinstation.engine.retraining.service import (
    Log,
    RetrainingError,
    evaluate_locked,
    other_clinics,
    resolve_split,
)

MEASURED_BY = "evaluated by the engine on the locked test set (claimed metrics not used)"


@dataclass(frozen=True)
class GateOutcome:
    """The gate's verdict on a candidate: ``promoted`` or ``rejected``, and the report."""

    version: str
    outcome: str
    report: dict[str, Any]


def gate_candidate(db: EngineDatabase, version: str, *, actor: str, log: Log,
                   n_boot: int = 200) -> GateOutcome:
    """Measure a candidate against the current model; promote it on a pass, else reject it.

    Args:
        db: The engine database.
        version: A candidate version (e.g. an imported file).
        actor: Who runs the gate (the engine CLI's ``cli:<user>``).
        log: Progress messages.
        n_boot: Bootstrap resamples for the confidence intervals.

    Raises:
        NotFoundError: No such version.
        InvalidError: It is not a candidate, or no model is deployed to compare with.
        RetrainingError: The locked split (or an other clinics' split) is missing.
    """
    from skinstation.training.sources import load_source
    from skinstation.training.splits import load_split

    info = registry.get_version(db, version)
    if info.status != ModelStatus.CANDIDATE:
        raise InvalidError(f"model {version} is {info.status}; only a candidate goes through "
                           "the gate")
    current = registry.current_version(db)
    if current is None:
        raise InvalidError("no model is deployed to gate against; the first imported model "
                           "is deployed by 'skinstation engine models import'")
    settings, engine = db.settings, db.settings.engine
    split_path = resolve_split(engine.locked_split)
    if not split_path.is_file():
        raise RetrainingError(f"locked split {split_path} not found; the gate needs the locked "
                              "test set (engine.locked_split)")
    records, load_report = load_source(engine.base_source, data_dir=settings.data_dir)
    log(load_report.summary())
    split = load_split(split_path, records)
    test = split.select(records, "test")
    paths = {"candidate": registry.model_path(db, version),
             "current": registry.model_path(db, current.version)}
    log(f"evaluating candidate {version} and current {current.version} on the locked test "
        f"set ({len(test)} images)")
    locked = {who: evaluate_locked(path, test, log, n_boot) for who, path in paths.items()}
    _, other_test, _, other_split_path = other_clinics(engine, settings.data_dir, log)
    others: dict[str, Any] = {}
    if other_split_path is not None:
        log(f"evaluating both on the other clinics' test set ({len(other_test)} images)")
        others = {who: evaluate_locked(path, other_test, log, n_boot)
                  for who, path in paths.items()}
    decision = decide(
        GateMetrics.from_metrics(locked["candidate"]),
        GateMetrics.from_metrics(locked["current"]),
        max_balanced_accuracy_drop=engine.max_balanced_accuracy_drop,
        max_sensitivity_drop=engine.max_sensitivity_drop,
        other_candidate=GateMetrics.from_metrics(others["candidate"]) if others else None,
        other_current=GateMetrics.from_metrics(others["current"]) if others else None,
    )
    report: dict[str, Any] = {
        "gated_by": actor, "locked_split": str(split_path), "locked_test_images": len(test),
        "current_version": current.version, "candidate": locked["candidate"],
        "current": locked["current"], "gate": decision.to_dict(),
        "metrics_source": MEASURED_BY,
    }
    measured: dict[str, Any] = {"locked_test": locked["candidate"]}
    if others:
        report["other_clinics"] = {"split": str(other_split_path), "images": len(other_test),
                                   "candidate": others["candidate"],
                                   "current": others["current"]}
        measured["other_clinics"] = others["candidate"]
    registry.record_gate(db, version, gate_metrics=measured, report=report)
    if decision.promote:
        registry.promote(db, version, actor=actor,
                         reason=f"passed the promotion gate against {current.version}")
        log(f"candidate {version} passed the gate: promoted and deployed")
        return GateOutcome(version, "promoted", report)
    registry.reject(db, version, actor=actor, report=report)
    log(f"candidate {version} rejected: {'; '.join(decision.reasons)}")
    return GateOutcome(version, "rejected", report)
