"""Argument checks shared by the storage API (clear ``ValueError`` messages, no silent fixes)."""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from datetime import datetime
from typing import TypeVar

from sqlalchemy.orm import Session

from skinstation.storage.errors import InactiveOperatorError, NotFoundError
from skinstation.storage.models import Operator
from skinstation.storage.timeutil import as_utc

T = TypeVar("T")

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


def active_operator(session: Session, operator_id: int) -> Operator:
    """Return an operator who exists and is not disabled.

    Raises:
        NotFoundError: If there is no such operator.
        InactiveOperatorError: If the account is disabled.
    """
    operator = session.get(Operator, operator_id)
    if operator is None:
        raise NotFoundError(f"operator {operator_id} does not exist")
    if operator.disabled:
        raise InactiveOperatorError(f"operator {operator.username!r} is disabled")
    return operator


def get_or_raise(session: Session, model: type[T], row_id: int) -> T:
    """Return the row of ``model`` with id ``row_id``, or raise :class:`NotFoundError`."""
    row = session.get(model, row_id)
    if row is None:
        kind = getattr(model, "__tablename__", model.__name__).removesuffix("s")
        raise NotFoundError(f"{kind} {row_id} does not exist")
    return row
