"""The image-quality checks in the operator's language (issue 19, point 12).

:func:`~skinstation.inference.quality.assess_quality` words each check in English
(``QualityCheck.reason``: logs, the engine, stored reports); the screens word it again from
the check's name, value and threshold through the text catalogue (``quality.fail.*``,
``quality.pass.*``), so a Korean window shows Korean reasons. The English catalogue texts are
the same sentences as ``QualityCheck.reason``.
"""

from __future__ import annotations

from collections.abc import Callable

from skinstation.inference.quality import QualityCheck, QualityReport

Translate = Callable[..., str]

PERCENT_CHECKS = frozenset({"clipping", "glare", "lesion_size", "lesion_border"})
"""Checks whose value and threshold are fractions (written as percentages)."""


def _number(name: str, value: float) -> str:
    return f"{value:.1%}" if name in PERCENT_CHECKS else f"{value:.1f}"


def quality_reason(tr: Translate, check: QualityCheck) -> str:
    """One check's sentence in the language of ``tr`` (its English ``reason`` if unknown)."""
    key = f"quality.{'pass' if check.passed else 'fail'}.{check.name}"
    try:
        return tr(key, value=_number(check.name, check.value),
                  limit=_number(check.name, check.threshold))
    except KeyError:
        return check.reason


def quality_reasons(tr: Translate, report: QualityReport) -> list[str]:
    """Why the image was rejected, one sentence per failed check (empty if it passed)."""
    return [quality_reason(tr, check) for check in report.failures]
