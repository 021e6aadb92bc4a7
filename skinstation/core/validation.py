"""Plain argument checks shared by the station and the engine (clear ``ValueError`` messages).

No silent fixes: a value is returned normalised (stripped, in UTC, as float) or refused.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from datetime import datetime

from skinstation.core.timeutil import as_utc

LABEL_CODE = re.compile(r"[a-z][a-z0-9_]{0,31}")


def require_text(value: str, field: str, max_length: int) -> str:
    """Return ``value`` stripped, or raise if it is empty or too long."""
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"{field} must be a non-empty string")
    value = value.strip()
    if len(value) > max_length:
        raise ValueError(f"{field} must be at most {max_length} characters, got {len(value)}")
    return value


def require_aware(value: datetime, field: str) -> datetime:
    """Return ``value`` in UTC, or raise if it is not a timezone-aware datetime."""
    if not isinstance(value, datetime):
        raise ValueError(f"{field} must be a datetime, got {type(value).__name__}")
    try:
        return as_utc(value)
    except ValueError as error:
        raise ValueError(f"{field}: {error}") from None


def require_label_code(code: str) -> str:
    """Return a label code, or raise if it is not a lower-case code like ``mel``."""
    if not isinstance(code, str) or not LABEL_CODE.fullmatch(code):
        raise ValueError(
            f"label code must be 1-32 lower-case letters, digits or '_' starting with a "
            f"letter (e.g. 'mel' or 'skin_cancer'), got {code!r}"
        )
    return code


def require_probabilities(values: Mapping[str, float], field: str) -> dict[str, float]:
    """Return probabilities as plain floats, or raise if empty or outside [0, 1]."""
    if not values:
        raise ValueError(f"{field} must not be empty")
    result: dict[str, float] = {}
    for code, value in values.items():
        number = float(value)
        if not math.isfinite(number) or not 0.0 <= number <= 1.0:
            raise ValueError(f"{field}[{code!r}] must be within [0, 1], got {value!r}")
        result[str(code)] = number
    return result
