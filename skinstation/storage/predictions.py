"""Building a checked prediction row from a model's output."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime

from skinstation.storage.models import INDETERMINATE, Prediction
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
            ``group_probabilities`` nor ``"indeterminate"``.
    """
    classes = require_probabilities(class_probabilities, "class_probabilities")
    groups = require_probabilities(group_probabilities, "group_probabilities")
    if decision != INDETERMINATE and decision not in groups:
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
