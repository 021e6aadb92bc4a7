"""The triage vocabulary: group and decision codes, one definition for every room.

The inference layer decides, the station's storage and the engine's review queue sort by it;
all of them spell the codes from here.
"""

from __future__ import annotations

SKIN_CANCER = "skin_cancer"
OTHER_DISEASE = "other_disease"
BENIGN = "benign"
GROUPS: tuple[str, ...] = (SKIN_CANCER, OTHER_DISEASE, BENIGN)
"""The reference design's three triage groups, in display order."""

INDETERMINATE = "indeterminate"
"""No group's probability exceeds the sum of the other two: a dermatologist decides."""

NOT_ASSESSABLE = "not_assessable"
"""The image was rejected before classification (not skin, blurred, a scrambled frame)."""

URGENT_DECISIONS: tuple[str, ...] = (INDETERMINATE, SKIN_CANCER)
"""Decisions the review queues put first (a referral flag puts a case first too)."""
