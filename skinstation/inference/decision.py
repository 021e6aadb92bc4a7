"""The reference design's triage decision rule.

A group is decided only when its probability is larger than the sum of the other two,
i.e. larger than one half of the total; otherwise the case is indeterminate and goes to a
dermatologist. With probabilities 0.6 / 0.3 / 0.1 the first group is decided; 0.5 / 0.3 / 0.2
is indeterminate (a tie with the rest is not "larger").
"""

from __future__ import annotations

from collections.abc import Mapping

from skinstation.core.triage import INDETERMINATE


def decide(group_probs: Mapping[str, float]) -> str:
    """Apply the larger-than-the-others rule.

    Args:
        group_probs: Group code → probability (need not sum to exactly one).

    Returns:
        The decided group's code, or ``"indeterminate"``.

    Raises:
        ValueError: If there are no groups or a probability is negative or not finite.
    """
    if not group_probs:
        raise ValueError("decide() needs at least one group probability")
    for code, value in group_probs.items():
        if not (value >= 0.0) or value == float("inf"):
            raise ValueError(f"probability of {code!r} must be a finite number >= 0, got {value!r}")
    for code, value in group_probs.items():
        others = sum(v for other, v in group_probs.items() if other != code)
        if value > others:
            return code
    return INDETERMINATE
