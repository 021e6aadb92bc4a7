"""Field types of the wire contract: the plain checks of core validation as pydantic types.

The engine so refuses (422, naming the field) what the station's storage refuses at entry
(:mod:`skinstation.core.validation`).

``Line``: one line of text, no control characters. ``Note``: free text that may hold line
breaks and tabs, no other control characters. ``WireTime``: an aware datetime within the
plausible years, sent as ``isoformat()``. ``DbInt``: a non-negative integer that fits the
databases' 32-bit ``INTEGER`` columns and ids.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import AfterValidator, AwareDatetime, Field, PlainSerializer, ValidationInfo

from skinstation.core.validation import (
    MAX_DB_INTEGER,
    reject_control_characters,
    require_plausible_time,
)


def _line(value: str, info: ValidationInfo) -> str:
    return reject_control_characters(value, info.field_name or "text")


def _note(value: str, info: ValidationInfo) -> str:
    return reject_control_characters(value, info.field_name or "note", multiline=True)


def _plausible(value: datetime, info: ValidationInfo) -> datetime:
    require_plausible_time(value, info.field_name or "time")
    return value  # kept in the zone it was sent in


def _isoformat(value: datetime) -> str:
    return value.isoformat()


Line = Annotated[str, AfterValidator(_line)]
"""One line of text without control characters (NUL, escape, line breaks, ...)."""

Note = Annotated[str, AfterValidator(_note)]
"""Free text: line breaks and tabs allowed, other control characters refused."""

DbInt = Annotated[int, Field(ge=0, le=MAX_DB_INTEGER)]
"""A non-negative integer a database ``INTEGER`` column (or row id) holds."""

WireTime = Annotated[
    AwareDatetime,
    AfterValidator(_plausible),
    PlainSerializer(_isoformat, return_type=str, when_used="json"),
]
"""An aware datetime within the plausible years, sent as ``isoformat()`` (``+00:00``)."""
