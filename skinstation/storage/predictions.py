"""Building a checked prediction row from a model's output."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime

from skinstation.storage.models import INDETERMINATE, NOT_ASSESSABLE, Prediction
from skinstation.storage.validation import require_probabilities, require_text


def new_prediction(
    capture_id: int,
    *,
    model_version: str,
    class_probabilities: Mapping[str, float],
    group_probabilities: Mapping[str, float],
    decision: str,
    referral: bool | None,
    now: datetime,
) -> Prediction:
    """Return an (unsaved) prediction row after checking the model output.

    Raises:
        ValueError: If a probability is outside [0, 1] or ``decision`` is neither a group of
            ``group_probabilities`` nor ``"indeterminate"``, or ``"not_assessable"`` comes
            with probabilities (a rejected image has no diagnosis).
    """
    if decision == NOT_ASSESSABLE:
        if class_probabilities or group_probabilities:
            raise ValueError("a not-assessable prediction carries no probabilities")
        classes: dict[str, float] = {}
        groups: dict[str, float] = {}
    else:
        classes = require_probabilities(class_probabilities, "class_probabilities")
        groups = require_probabilities(group_probabilities, "group_probabilities")
    if decision not in (NOT_ASSESSABLE, INDETERMINATE) and decision not in groups:
        raise ValueError(
            f"decision must be one of {sorted(groups)} or {INDETERMINATE!r}, got {decision!r}"
        )
    return Prediction(
        capture_id=capture_id,
        model_version=require_text(model_version, "model_version", 64),
        class_probabilities=classes,
        group_probabilities=groups,
        decision=decision,
        referral=referral,
        created_at=now,
    )
