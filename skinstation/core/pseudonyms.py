"""What a patient's pseudonymous ID may be: the station's pattern, and fixed rules against names.

A pseudonym travels to the engine on every sync, so a real name or a date of birth typed into
the patient-ID field would leave the station. Whatever pattern the station configures
(:attr:`skinstation.settings.Settings.pseudonym_pattern`), :func:`check_pseudonym` refuses

* an empty value, control characters, and more than :data:`MAX_PSEUDONYM_LENGTH` characters
  (refused, never cut off);
* anything that looks like a date of birth: ``1961-03-02``, ``02.03.1961``, ``03/02/1961``,
  ``19610302``, a resident registration number ``610302-1234567``, or ``610302`` next to a
  name or a space;
* anything that looks like a name: two or more words of letters, or two Hangul syllables;
* spaces.

Each refusal is a :class:`PseudonymError` whose ``reason`` names the rule (the UI translates
it) and whose message says why and what a pseudonym looks like. Messages never quote the
refused value: it may be the personal data the rule keeps out of logs.
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Final

from skinstation.core.validation import find_control_character, reject_control_characters
from skinstation.settings import DEFAULT_PSEUDONYM_PATTERN

MAX_PSEUDONYM_LENGTH: Final = 64
EXAMPLE: Final = "P-0001"
HINT: Final = f"enter the patient's pseudonymous ID, e.g. {EXAMPLE}"

EMPTY, CONTROL, TOO_LONG = "empty", "control", "too_long"
DATE_OF_BIRTH, NAME, WHITESPACE, PATTERN = "date_of_birth", "name", "whitespace", "pattern"
REASONS: Final = (EMPTY, CONTROL, TOO_LONG, DATE_OF_BIRTH, NAME, WHITESPACE, PATTERN)
"""Every ``PseudonymError.reason``, in the order the rules are checked."""

_YEAR = r"(?P<y>(?:19|20)\d\d)"
_MONTH = r"(?P<m>0?[1-9]|1[0-2])"
_DAY = r"(?P<d>0?[1-9]|[12]\d|3[01])"
_SEP = r"[-./]"
_ALWAYS_DATES = tuple(re.compile(rf"(?<!\d){body}(?!\d)") for body in (
    rf"{_YEAR}{_SEP}{_MONTH}{_SEP}{_DAY}",  # 1961-03-02
    rf"{_DAY}{_SEP}{_MONTH}{_SEP}{_YEAR}",  # 02.03.1961
    rf"{_MONTH}{_SEP}{_DAY}{_SEP}{_YEAR}",  # 03/02/1961
    r"(?P<y>(?:19|20)\d\d)(?P<m>0[1-9]|1[0-2])(?P<d>0[1-9]|[12]\d|3[01])",  # 19610302
    r"(?P<d>0[1-9]|[12]\d|3[01])(?P<m>0[1-9]|1[0-2])(?P<y>(?:19|20)\d\d)",  # 02031961
    r"(?P<yy>\d\d)(?P<m>0[1-9]|1[0-2])(?P<d>0[1-9]|[12]\d|3[01])-?[1-4]\d{6}",  # RRN
))
_SHORT_DATE = re.compile(r"(?<!\d)(?P<yy>\d\d)(?P<m>0[1-9]|1[0-2])(?P<d>0[1-9]|[12]\d|3[01])"
                         r"(?!\d)")  # 610302: a birth date only next to a name or a space
_HANGUL_NAME = re.compile(r"[\uac00-\ud7a3]{2,}")
_WORD_PUNCTUATION = re.compile(r"[.,'\u2019-]")


class PseudonymError(ValueError):
    """A value refused as a pseudonym.

    Attributes:
        reason: Which rule refused it (one of :data:`REASONS`).
        values: What the message names besides the rule (``length``, ``maximum``,
            ``pattern``, ``character``, ``position``), for a translated message.
    """

    def __init__(self, reason: str, message: str, **values: str | int) -> None:
        super().__init__(message)
        self.reason = reason
        self.values = values


def check_pseudonym(value: str, pattern: str = DEFAULT_PSEUDONYM_PATTERN) -> str:
    """Return ``value`` without surrounding whitespace, or refuse it as a pseudonym.

    Args:
        value: What was entered as the patient's ID.
        pattern: The station's pattern; the value must match it in full.

    Raises:
        PseudonymError: Saying which rule refused it and what a pseudonym looks like.
    """
    if not isinstance(value, str) or not value.strip():
        raise PseudonymError(EMPTY, f"pseudonym is empty; {HINT}")
    value = value.strip()
    found = find_control_character(value)
    if found is not None:
        try:
            reject_control_characters(value, "pseudonym")
        except ValueError as error:
            raise PseudonymError(CONTROL, str(error), character=f"U+{ord(found[1]):04X}",
                                 position=found[0]) from None
    if len(value) > MAX_PSEUDONYM_LENGTH:
        raise PseudonymError(
            TOO_LONG, f"pseudonym is {len(value)} characters long, more than the "
            f"{MAX_PSEUDONYM_LENGTH} allowed (nothing was cut off); {HINT}",
            length=len(value), maximum=MAX_PSEUDONYM_LENGTH)
    name_like = looks_like_name(value)
    if looks_like_date_of_birth(value, name_context=name_like or _has_space(value)):
        raise PseudonymError(DATE_OF_BIRTH, "pseudonym looks like it holds a date of birth, "
                             f"which must not be entered here; {HINT}")
    if name_like:
        raise PseudonymError(NAME, "pseudonym looks like a person's name, which must not be "
                             f"entered here; {HINT}")
    if _has_space(value):
        raise PseudonymError(WHITESPACE, "pseudonym must not contain spaces; enter the "
                             f"patient's pseudonymous ID as one code, e.g. {EXAMPLE}")
    if re.fullmatch(pattern, value) is None:
        raise PseudonymError(PATTERN, f"pseudonym does not match this station's rule "
                             f"{pattern}; {HINT}", pattern=pattern)
    return value


def looks_like_date_of_birth(value: str, *, name_context: bool = False) -> bool:
    """Whether ``value`` holds a plausible birth date (a real day, not in the future).

    Args:
        value: The text.
        name_context: The text also holds a name or a space; then six digits ``YYMMDD``
            count as a date too (alone, ``P-000123`` is a serial number).
    """
    patterns = _ALWAYS_DATES + ((_SHORT_DATE,) if name_context else ())
    return any(_is_past_date(match) for regex in patterns for match in regex.finditer(value))


def looks_like_name(value: str) -> bool:
    """Whether ``value`` looks like a person's name.

    Two or more space-separated words of letters (``Hong Gildong``, ``Roe, Jane``), or two
    or more Hangul syllables in a row (``홍길동``).
    """
    if _HANGUL_NAME.search(value):
        return True
    words = [_WORD_PUNCTUATION.sub("", word) for word in value.split()]
    return sum(1 for word in words if len(word) >= 2 and word.isalpha()) >= 2


def _has_space(value: str) -> bool:
    return any(char.isspace() for char in value)


def _is_past_date(match: re.Match[str]) -> bool:
    groups = match.groupdict()
    if groups.get("yy") is not None:
        today = dt.date.today()
        two = int(groups["yy"])
        year = 2000 + two if 2000 + two <= today.year else 1900 + two
    else:
        year = int(groups["y"])
    try:
        day = dt.date(year, int(groups["m"]), int(groups["d"]))
    except ValueError:
        return False
    return dt.date(1900, 1, 1) <= day <= dt.date.today()
