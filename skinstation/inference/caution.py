"""When a "likely benign" decision is no all-clear: a notable skin-cancer probability.

The reference design's rule (:func:`skinstation.inference.decision.decide`) may decide *benign*
while a melanoma (or a pre-cancerous class) has, say, 12%: below the referral threshold, so no
referral, but not negligible either. Such a result must not read "no urgent action": its
guidance is ``guidance.benign_caution`` wherever it is shown (station, engine, provider API).
"""

from __future__ import annotations

from collections.abc import Mapping

from skinstation.core.triage import BENIGN, SKIN_CANCER
from skinstation.inference.taxonomy import Taxonomy

NOTABLE = 0.10
"""A skin-cancer (or pre-cancerous) probability above which a benign decision is no all-clear.

More than one in ten is not negligible for a melanoma; below the model's referral threshold
it does not refer, but it must not read "no urgent action" in green either.
"""

CAUTION_GUIDANCE = "guidance.benign_caution"


def notable_cancer(class_probs: Mapping[str, float], group_probs: Mapping[str, float],
                   taxonomy: Taxonomy) -> tuple[str, float] | None:
    """The most probable skin-cancer or pre-cancerous class if above :data:`NOTABLE`, else None.

    Returns ``(class code, probability)``; ``("skin_cancer", p)`` when no single class is
    notable but the skin-cancer group is.
    """
    watched = [(code, p) for code, p in class_probs.items()
               if taxonomy.group_of.get(code) == SKIN_CANCER or code in taxonomy.precancerous]
    top = max(watched, key=lambda item: item[1], default=None)
    if top is not None and top[1] > NOTABLE:
        return top
    group = group_probs.get(SKIN_CANCER, 0.0)
    return (SKIN_CANCER, group) if group > NOTABLE else None


def needs_caution(decision: str, referral: bool, class_probs: Mapping[str, float],
                  group_probs: Mapping[str, float], taxonomy: Taxonomy) -> bool:
    """Whether a benign decision without referral still has a notable skin-cancer probability."""
    return (decision == BENIGN and not referral
            and notable_cancer(class_probs, group_probs, taxonomy) is not None)
