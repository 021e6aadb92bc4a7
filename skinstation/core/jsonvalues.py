"""Values that are valid JSON everywhere: no NaN or infinity.

Python's :mod:`json` writes ``NaN`` and ``Infinity``, which are not JSON: PostgreSQL's ``json``
type refuses them (SQLite stores them, and they read back as floats). Metrics often hold NaN
(a class with no test images has no sensitivity), so everything the databases keep as JSON
goes through :func:`finite_json` first: a value that is not a finite number becomes ``null``,
meaning "not measured".
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Mapping
from typing import Any


def finite_json(value: Any) -> Any:
    """A copy of ``value`` that JSON (and PostgreSQL) accepts: NaN and ±inf become ``None``.

    Mappings become dicts with string keys, lists and tuples become lists, numbers become
    plain ``int`` / ``float`` (numpy scalars included); strings, booleans and ``None`` stay.

    Args:
        value: A JSON-like value (dicts, lists, numbers, strings, booleans, ``None``).

    Returns:
        The same structure with every non-finite number replaced by ``None``.

    Raises:
        TypeError: Something that has no JSON form (e.g. a set or an object).
    """
    if value is None or isinstance(value, str | bool):
        return value
    if isinstance(value, Mapping):
        return {str(key): finite_json(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [finite_json(item) for item in value]
    if isinstance(value, numbers.Integral):
        return int(value)
    if isinstance(value, numbers.Real):
        number = float(value)
        return number if math.isfinite(number) else None
    item = getattr(value, "item", None)  # other numpy scalars (numpy.bool_)
    if callable(item) and getattr(value, "shape", None) == ():
        return finite_json(item())
    raise TypeError(f"{type(value).__name__} has no JSON form")
