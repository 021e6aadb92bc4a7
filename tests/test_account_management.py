"""Account management (issue 19 point 8): attempts left, unlock, disable (never the last
administrator), a reset that forces a new password, changing one's own; exact audit rows."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import select

from skinstation.auth import (
    AccountDisabledError,
    AccountLockedError,
    InvalidCredentialsError,
    LastAdminError,
    OwnAccountError,
    PasswordChangeRequiredError,
    PasswordPolicyError,
    PermissionDeniedError,
    Role,
    WrongCurrentPasswordError,
    can_capture,
)
from skinstation.services.station import StationService
from skinstation.settings import AuthSettings, Settings
from skinstation.storage import AuditEvent
from skinstation.storage.audit import verify_audit_log
from tests.test_auth import (
    ADMIN_PASSWORD,
    POLICY,
    STAFF_PASSWORD,
    Station,
    _station,
    fast_hasher,
)
from tests.test_storage_helpers import BACKENDS, open_backend

TEMPORARY = "temporary phrase 31"
NEW = "my own new phrase 8"


@pytest.fixture(params=BACKENDS)
def station(request: pytest.FixtureRequest, settings: Settings) -> Iterator[Station]:
    with open_backend(settings, request.param) as database:
        yield _station(database)


@pytest.fixture()
def sqlite_station(settings: Settings) -> Iterator[Station]:
    with open_backend(settings, "sqlite") as database:
        yield _station(database)


def rows(s: Station, *actions: str) -> list[tuple[str, int | None, str | None, dict[str, object]]]:
    """(action, actor, entity id, detail) of the audit rows with these actions, oldest first."""
    with s.database.transaction() as db:
        found = db.scalars(select(AuditEvent).where(AuditEvent.action.in_(actions))
                           .order_by(AuditEvent.id))
        return [(r.action, r.actor_id, r.entity_id, r.detail) for r in found]


def operator_id(s: Station, username: str) -> int:
    return next(a.id for a in s.auth.list_operators(s.admin) if a.username == username)


def test_a_wrong_password_says_how_many_attempts_are_left(station: Station) -> None:
    s = station
    lefts = []
    for _ in range(POLICY.max_failed_logins - 1):
        with pytest.raises(InvalidCredentialsError) as wrong:
            s.auth.login("sam", "guess")
        lefts.append((wrong.value.attempts_left, wrong.value.lockout_minutes, str(wrong.value)))
    assert lefts == [(2, 15, "Wrong username or password."),
                     (1, 15, "Wrong username or password.")]
    with pytest.raises(AccountLockedError) as locked:
        s.auth.login("sam", "guess")
    assert locked.value.shown_until == "10:15"
    # An unknown username is counted the same way, so the count does not tell it apart.
    unknown = []
    for _ in range(2):
        with pytest.raises(InvalidCredentialsError) as wrong:
            s.auth.login("mallory", "guess")
        unknown.append(wrong.value.attempts_left)
    assert unknown == [2, 1]


def test_attempts_left_follow_the_configured_policy(settings: Settings) -> None:
    with open_backend(settings, "sqlite") as database:
        s = _station(database)
        policy = AuthSettings(max_failed_logins=7, lockout_minutes=30)
        from skinstation.auth import AuthService

        auth = AuthService(database, settings=policy, clock=s.clock, hasher=fast_hasher())
        with pytest.raises(InvalidCredentialsError) as wrong:
            auth.login("dana", "guess")
        assert (wrong.value.attempts_left, wrong.value.lockout_minutes) == (6, 30)


def test_unlock_lifts_a_lockout_at_once_and_is_audited(station: Station) -> None:
    s = station
    for _ in range(POLICY.max_failed_logins):
        with pytest.raises((InvalidCredentialsError, AccountLockedError)):
            s.auth.login("sam", "guess")
    with pytest.raises(AccountLockedError):
        s.auth.login("sam", STAFF_PASSWORD)
    assert [a.locked for a in s.auth.list_operators(s.admin) if a.username == "sam"] == [True]
    staff = s.auth.login("dana", "lentigo maligna 7")
    with pytest.raises(PermissionDeniedError):
        s.auth.unlock_operator(staff, "sam")
    account = s.auth.unlock_operator(s.admin, "sam")
    assert (account.locked, account.locked_until) == (False, None)
    assert s.auth.login("sam", STAFF_PASSWORD).username == "sam"  # no 15-minute wait
    sam = operator_id(s, "sam")
    assert rows(s, "operator.unlocked") == [
        ("operator.unlocked", s.admin.operator_id, str(sam),
         {"username": "sam", "locked_until": "2025-03-14T10:15:00+00:00", "failed_logins": 0}),
    ]
    s.auth.unlock_operator(s.admin, "sam")  # not locked: nothing to do, nothing audited
    assert len(rows(s, "operator.unlocked")) == 1
    with s.database.transaction() as db:
        assert verify_audit_log(db).breaks == []


def test_a_disabled_account_is_refused_with_a_message(settings: Settings) -> None:
    service = StationService(settings)
    try:
        service.create_first_admin("root", "Root", ADMIN_PASSWORD)
        admin = service.login("root", ADMIN_PASSWORD)
        service.create_operator(admin, "nurse", "Nurse Kim", Role.STAFF, STAFF_PASSWORD)
        account = service.disable_operator(admin, "nurse")
        assert account.disabled is True
        with pytest.raises(AccountDisabledError) as refused:
            service.login("nurse", STAFF_PASSWORD)
        assert str(refused.value) == "This account is disabled; ask an administrator."
        with pytest.raises(OwnAccountError) as own:
            service.disable_operator(admin, "root")
        assert (own.value.action, str(own.value)) == ("disable",
                                                      "You cannot disable your own account.")
        service.enable_operator(admin, "nurse")
        assert service.login("nurse", STAFF_PASSWORD).username == "nurse"
        with service.database.transaction() as db:
            found = db.scalars(select(AuditEvent).where(AuditEvent.action.in_(
                ["operator.disabled", "operator.enabled"])).order_by(AuditEvent.id))
            audited = [(r.action, r.actor_id, r.entity_type, r.detail) for r in found]
        assert audited == [
            ("operator.disabled", admin.operator_id, "operator", {"username": "nurse"}),
            ("operator.enabled", admin.operator_id, "operator", {"username": "nurse"}),
        ]
    finally:
        service.database.dispose()


def test_the_last_active_administrator_cannot_be_disabled(
    sqlite_station: Station, monkeypatch: pytest.MonkeyPatch
) -> None:
    s = sqlite_station
    s.auth.create_operator(s.admin, "ada", "Ada Admin", Role.ADMIN, "second admin phrase")
    ada = s.auth.login("ada", "second admin phrase")
    s.auth.disable_operator(s.admin, "ada")
    # Ada's request got past its session check just before root's commit (two admins
    # disabling each other at once): disabling root would leave no active administrator.
    monkeypatch.setattr(s.auth, "check", lambda session: session)
    ada.ended_reason = None
    with pytest.raises(LastAdminError) as refused:
        s.auth.disable_operator(ada, "root")
    assert str(refused.value) == "The last active administrator cannot be disabled."
    assert [a.disabled for a in s.auth.list_operators(s.admin) if a.username == "root"] == [False]
    assert [r[2] for r in rows(s, "operator.disabled")] == [str(operator_id(s, "ada"))]


def test_a_reset_forces_a_new_password_at_the_next_login(station: Station) -> None:
    s = station
    open_session = s.auth.login("sam", STAFF_PASSWORD)
    s.auth.reset_password(s.admin, "sam", TEMPORARY)
    assert open_session.expired is True  # a reset ends the account's sessions
    with pytest.raises(InvalidCredentialsError):
        s.auth.login("sam", STAFF_PASSWORD)
    assert [a.must_change_password for a in s.auth.list_operators(s.admin)
            if a.username == "sam"] == [True]
    session = s.auth.login("sam", TEMPORARY)
    assert session.must_change_password is True
    with pytest.raises(PasswordChangeRequiredError) as required:
        s.auth.require(session, can_capture)
    assert str(required.value) == (
        "Your password was reset by an administrator; choose a new one first.")
    with pytest.raises(PasswordPolicyError, match="at least 10 characters"):
        s.auth.change_password(session, TEMPORARY, "tiny")  # the policy of new accounts
    with pytest.raises(PasswordPolicyError, match="must not contain the username"):
        s.auth.change_password(session, TEMPORARY, "sam-is-my-password")
    with pytest.raises(WrongCurrentPasswordError, match=r"The current password is wrong\."):
        s.auth.change_password(session, "not the temporary one", NEW)
    s.auth.change_password(session, TEMPORARY, NEW)
    assert session.must_change_password is False
    assert s.auth.require(session, can_capture) is session
    assert s.auth.login("sam", NEW).must_change_password is False
    sam = str(operator_id(s, "sam"))
    assert rows(s, "password.reset", "password.changed", "password.change_failed") == [
        ("password.reset", s.admin.operator_id, sam,
         {"username": "sam", "must_change_password": True}),
        ("password.change_failed", int(sam), sam, {"reason": "wrong_current_password"}),
        ("password.changed", int(sam), sam, {}),
    ]
    with pytest.raises(OwnAccountError) as own:
        s.auth.reset_password(s.admin, "root", TEMPORARY)
    assert own.value.action == "reset"


def test_station_service_offers_account_management(settings: Settings) -> None:
    service = StationService(settings)
    try:
        service.create_first_admin("root", "Root", ADMIN_PASSWORD)
        admin = service.login("root", ADMIN_PASSWORD)
        service.create_operator(admin, "nurse", "Nurse Kim", Role.STAFF, STAFF_PASSWORD)
        nurse = service.login("nurse", STAFF_PASSWORD)
        service.change_password(nurse, STAFF_PASSWORD, NEW)
        service.reset_password(admin, "nurse", TEMPORARY)
        assert service.login("nurse", TEMPORARY).must_change_password is True
        for _ in range(service.settings.auth.max_failed_logins):
            with pytest.raises((InvalidCredentialsError, AccountLockedError)):
                service.login("nurse", "guess")
        assert service.unlock_operator(admin, "nurse").locked is False
        assert service.login("nurse", TEMPORARY).username == "nurse"
    finally:
        service.database.dispose()
