"""Every permission, for every role, with the exact expected answer."""

from __future__ import annotations

import pytest

from skinstation.auth import (
    Role,
    can_capture,
    can_change_station_settings,
    can_edit_review,
    can_manage_operators,
    can_review,
    can_view_audit_log,
    can_view_history,
    can_view_sync_status,
)

#                          staff  dermatologist  admin
EXPECTED = {
    can_capture: (True, True, False),
    can_view_history: (True, True, False),
    can_review: (False, True, False),
    can_manage_operators: (False, False, True),
    can_change_station_settings: (False, False, True),
    can_view_sync_status: (False, False, True),
    can_view_audit_log: (False, False, True),
}
ROLES = (Role.STAFF, Role.DERMATOLOGIST, Role.ADMIN)
TABLE = [
    pytest.param(permission, role, allowed, id=f"{permission.__name__}-{role}")
    for permission, row in EXPECTED.items()
    for role, allowed in zip(ROLES, row, strict=True)
]


@pytest.mark.parametrize(("permission", "role", "allowed"), TABLE)
def test_role_permission_table(permission, role: Role, allowed: bool) -> None:  # type: ignore[no-untyped-def]
    assert permission(role) is allowed
    assert permission(role.value) is allowed  # plain strings from the database work too


@pytest.mark.parametrize(
    ("role", "actor_id", "author_id", "allowed"),
    [
        (Role.DERMATOLOGIST, 7, 7, True),  # the author
        (Role.DERMATOLOGIST, 8, 7, False),  # another dermatologist
        (Role.STAFF, 7, 7, False),  # staff never, even as "author"
        (Role.ADMIN, 7, 7, False),
        (Role.ADMIN, 1, 7, False),
    ],
)
def test_only_the_author_dermatologist_can_edit_a_review(
    role: Role, actor_id: int, author_id: int, allowed: bool
) -> None:
    assert can_edit_review(role, actor_id=actor_id, review_author_id=author_id) is allowed


def test_unknown_role_is_an_error_not_a_denial() -> None:
    with pytest.raises(ValueError, match="unknown role 'nurse'"):
        can_capture("nurse")
