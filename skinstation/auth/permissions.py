"""Who may do what: one small pure function per permission, decided by role alone.

Roles: ``staff`` capture and browse; a ``dermatologist`` also reviews; an ``admin`` runs the
station (accounts, settings, sync, audit log) but, by design, does not see patient data — a
person who is both keeps two accounts.

============================  =====  =============  =====
permission                    staff  dermatologist  admin
============================  =====  =============  =====
can_capture                   yes    yes            no
can_view_history              yes    yes            no
can_review                    no     yes            no
can_edit_review (own only)    no     yes            no
can_manage_operators          no     no             yes
can_change_station_settings   no     no             yes
can_view_sync_status          no     no             yes
can_view_audit_log            no     no             yes
============================  =====  =============  =====
"""

from __future__ import annotations

from collections.abc import Callable

from skinstation.storage.models import Role

Permission = Callable[[Role | str], bool]


def _role(role: Role | str) -> Role:
    try:
        return Role(role)
    except ValueError:
        raise ValueError(f"unknown role {role!r}") from None


def can_capture(role: Role | str) -> bool:
    """Take and save captures (and give them the operator's original label)."""
    return _role(role) in (Role.STAFF, Role.DERMATOLOGIST)


def can_view_history(role: Role | str) -> bool:
    """Browse patients' capture history and results."""
    return _role(role) in (Role.STAFF, Role.DERMATOLOGIST)


def can_review(role: Role | str) -> bool:
    """Open the review queue and add a review label."""
    return _role(role) is Role.DERMATOLOGIST


def can_edit_review(role: Role | str, *, actor_id: int, review_author_id: int) -> bool:
    """Revise an existing review: only the dermatologist who wrote it."""
    return _role(role) is Role.DERMATOLOGIST and actor_id == review_author_id


def can_manage_operators(role: Role | str) -> bool:
    """Create, disable and enable accounts, reset passwords."""
    return _role(role) is Role.ADMIN


def can_change_station_settings(role: Role | str) -> bool:
    """Change the station's configuration."""
    return _role(role) is Role.ADMIN


def can_view_sync_status(role: Role | str) -> bool:
    """See the sync outbox and the engine connection."""
    return _role(role) is Role.ADMIN


def can_view_audit_log(role: Role | str) -> bool:
    """Read the audit log."""
    return _role(role) is Role.ADMIN
