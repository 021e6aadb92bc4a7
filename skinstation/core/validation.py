"""Plain argument checks shared by the station and the engine (clear ``ValueError`` messages).

No silent fixes: a value is returned normalised (stripped, in UTC, as float) or refused. The
same rules guard the station's storage and the engine's wire contract
(:mod:`skinstation.protocol.fields`): text holds no control characters (a note may hold line
breaks and tabs), times lie within :data:`EARLIEST_YEAR`..:data:`LATEST_YEAR`, and integers fit
the databases' 32-bit ``INTEGER`` (:data:`MAX_DB_INTEGER`).
"""

from __future__ import annotations

import math
import re
import unicodedata
from collections.abc import Mapping
from datetime import datetime

from skinstation.core.timeutil import as_utc

LABEL_CODE = re.compile(r"[a-z][a-z0-9_]{0,31}")
MAX_DB_INTEGER = 2**31 - 1
"""Largest integer a row id or integer column holds (PostgreSQL ``INTEGER``, 32-bit)."""
EARLIEST_YEAR = 1900
LATEST_YEAR = 2200
"""Times outside these years (UTC) are typing or clock errors, refused at entry."""
LINE_BREAKS = frozenset("\n\r\t")
"""What a multi-line note may hold besides printable text."""
_SEPARATORS = frozenset("\u2028\u2029")  # line / paragraph separators: line breaks too


def find_control_character(value: str, *, multiline: bool = False) -> tuple[int, str] | None:
    """Return the position and character of the first control character in ``value``, if any.

    Control characters are Unicode category ``Cc`` (NUL, escape, delete, C1 controls) and the
    line and paragraph separators; with ``multiline`` a line feed, carriage return or tab is
    allowed.
    """
    for position, char in enumerate(value):
        if multiline and char in LINE_BREAKS:
            continue
        if char in _SEPARATORS or unicodedata.category(char) == "Cc":
            return position, char
    return None


def reject_control_characters(value: str, field: str, *, multiline: bool = False) -> str:
    """Return ``value`` unchanged, or raise if it holds a control character.

    Raises:
        ValueError: Naming the field, the character (as ``U+XXXX``) and its position.
    """
    found = find_control_character(value, multiline=multiline)
    if found is not None:
        position, char = found
        allowed = " (line breaks and tabs are allowed)" if multiline else ""
        raise ValueError(f"{field} must not contain control characters{allowed}; found "
                         f"U+{ord(char):04X} at position {position}")
    return value


def require_text(value: str, field: str, max_length: int, *, multiline: bool = False) -> str:
    """Return ``value`` stripped, or raise if it is empty, too long or holds control characters.

    Args:
        value: The text.
        field: Its name, for the message.
        max_length: Most characters allowed (after stripping).
        multiline: Allow line breaks and tabs (a note); other control characters never.
    """
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"{field} must be a non-empty string")
    value = value.strip()
    if len(value) > max_length:
        raise ValueError(f"{field} must be at most {max_length} characters, got {len(value)}")
    return reject_control_characters(value, field, multiline=multiline)


def require_plausible_time(value: datetime, field: str) -> datetime:
    """Return ``value`` in UTC, or raise if it is naive or outside the plausible years.

    Raises:
        ValueError: If ``value`` is not an aware datetime, or its year (in its own zone or in
            UTC) is before :data:`EARLIEST_YEAR` or after :data:`LATEST_YEAR`.
    """
    if isinstance(value, datetime) and not EARLIEST_YEAR <= value.year <= LATEST_YEAR:
        raise ValueError(_implausible(value, field))
    utc = require_aware(value, field)  # the year check above keeps the conversion in range
    if not EARLIEST_YEAR <= utc.year <= LATEST_YEAR:
        raise ValueError(_implausible(value, field))
    return utc


def _implausible(value: datetime, field: str) -> str:
    return (f"{field} must lie between the years {EARLIEST_YEAR} and {LATEST_YEAR}, got "
            f"{value.isoformat()}")


def require_db_integer(value: int, field: str, minimum: int = 0) -> int:
    """Return ``value``, or raise if it is below ``minimum`` or above :data:`MAX_DB_INTEGER`."""
    if not minimum <= value <= MAX_DB_INTEGER:
        raise ValueError(f"{field} must be between {minimum} and {MAX_DB_INTEGER}, got {value}")
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
