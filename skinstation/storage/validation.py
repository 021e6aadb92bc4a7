"""Storage-side argument checks: rows that must exist and be active (plain checks: core).

The plain checks are the engine's too (its wire contract uses them): text without control
characters (a note may hold line breaks), plausible times, integers a database column holds.
Every value a person or device enters passes them before it is written.
"""

from __future__ import annotations

from typing import TypeVar

from sqlalchemy.orm import Session

from skinstation.core.validation import LABEL_CODE as LABEL_CODE
from skinstation.core.validation import MAX_DB_INTEGER as MAX_DB_INTEGER
from skinstation.core.validation import reject_control_characters as reject_control_characters
from skinstation.core.validation import require_aware as require_aware
from skinstation.core.validation import require_db_integer as require_db_integer
from skinstation.core.validation import require_label_code as require_label_code
from skinstation.core.validation import require_plausible_time as require_plausible_time
from skinstation.core.validation import require_probabilities as require_probabilities
from skinstation.core.validation import require_text as require_text
from skinstation.storage.errors import InactiveOperatorError, NotFoundError
from skinstation.storage.models import Operator

T = TypeVar("T")


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
