"""Operator accounts: first admin, argon2 hashes, lockout, sessions, disabling, audit."""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone

import pytest
from argon2 import PasswordHasher, Type
from sqlalchemy import select

from skinstation.auth import (
    AccountDisabledError,
    AccountLockedError,
    AuthService,
    InvalidCredentialsError,
    OperatorExistsError,
    PasswordPolicyError,
    PermissionDeniedError,
    Role,
    Session,
    SessionExpiredError,
    UnknownOperatorError,
    can_review,
    default_hasher,
)
from skinstation.settings import AuthSettings, Settings
from skinstation.storage import AuditAction, AuditEvent, Database, Operator
from tests.test_storage_helpers import BACKENDS, FakeClock, open_backend

ADMIN_PASSWORD = "correct horse battery"
STAFF_PASSWORD = "staple-violet-42"
DERM_PASSWORD = "lentigo maligna 7"
POLICY = AuthSettings(max_failed_logins=3, lockout_minutes=15, session_timeout_minutes=15)


def fast_hasher() -> PasswordHasher:
    """Still argon2id, with a smaller cost so the suite stays fast."""
    return PasswordHasher(time_cost=1, memory_cost=8192, parallelism=1)


@dataclass
class Station:
    database: Database
    auth: AuthService
    clock: FakeClock
    admin: Session

    def actions(self) -> list[tuple[str, int | None, dict[str, object]]]:
        with self.database.transaction() as session:
            rows = session.scalars(select(AuditEvent).order_by(AuditEvent.id))
            return [(r.action, r.actor_id, r.detail) for r in rows]


def _station(database: Database) -> Station:
    clock = FakeClock(datetime(2025, 3, 14, 10, 0, tzinfo=UTC))
    auth = AuthService(
        database, settings=POLICY, clock=clock, hasher=fast_hasher(), display_timezone=UTC
    )
    auth.create_first_admin("root", "Station Admin", ADMIN_PASSWORD)
    admin = auth.login("root", ADMIN_PASSWORD)
    auth.create_operator(admin, "sam", "Sam Staff", Role.STAFF, STAFF_PASSWORD)
    auth.create_operator(admin, "dana", "Dr Dana", "dermatologist", DERM_PASSWORD)
    return Station(database, auth, clock, admin)


@pytest.fixture(params=BACKENDS)
def station(request: pytest.FixtureRequest, settings: Settings) -> Iterator[Station]:
    with open_backend(settings, request.param) as database:
        yield _station(database)


@pytest.fixture()
def sqlite_station(settings: Settings) -> Iterator[Station]:
    with open_backend(settings, "sqlite") as database:
        yield _station(database)


def test_first_admin_is_created_once_from_explicit_input(settings: Settings) -> None:
    with open_backend(settings, "sqlite") as database:
        auth = AuthService(database, clock=FakeClock(), hasher=fast_hasher())
        assert auth.needs_first_admin() is True
        with pytest.raises(PasswordPolicyError, match="at least 10 characters"):
            auth.create_first_admin("root", "Admin", "short")
        assert auth.needs_first_admin() is True
        account = auth.create_first_admin(" Root ", "Admin", ADMIN_PASSWORD)
        assert (account.username, account.role, account.disabled) == ("root", Role.ADMIN, False)
        assert auth.needs_first_admin() is False
        with pytest.raises(OperatorExistsError) as refused:
            auth.create_first_admin("second", "Other", "another long password")
        assert str(refused.value) == (
            "An administrator already exists; first-run setup cannot run again."
        )
        with database.transaction() as session:
            assert session.scalars(select(Operator.username)).all() == ["root"]


def test_default_hasher_is_memory_hard_argon2id(sqlite_station: Station) -> None:
    hasher = default_hasher()
    assert (hasher.type, hasher.memory_cost, hasher.time_cost) == (Type.ID, 65536, 3)
    with sqlite_station.database.transaction() as session:
        stored = session.scalar(select(Operator.password_hash).where(Operator.username == "sam"))
    assert stored is not None and stored.startswith("$argon2id$v=19$")
    assert STAFF_PASSWORD not in stored


@pytest.mark.parametrize(
    ("password", "message"),
    [
        ("short", "Password must be at least 10 characters long."),
        ("x" * 257, "Password must be at most 256 characters long."),
        ("my-nina-password", "Password must not contain the username."),
        ("password123", "Password is too easy to guess; choose another."),
        ("aaaaaaaaaaaa", "Password is too easy to guess; choose another."),
    ],
)
def test_password_policy_messages(sqlite_station: Station, password: str, message: str) -> None:
    s = sqlite_station
    with pytest.raises(PasswordPolicyError) as refused:
        s.auth.create_operator(s.admin, "nina", "Nina", Role.STAFF, password)
    assert str(refused.value) == message


def test_login_opens_a_session_and_is_audited(station: Station) -> None:
    s = station
    session = s.auth.login("  SAM ", STAFF_PASSWORD)
    assert (session.username, session.display_name, session.role) == ("sam", "Sam Staff", "staff")
    assert session.started_at == s.clock.now and session.expired is False
    assert s.actions()[-1] == (AuditAction.LOGIN_SUCCEEDED.value, session.operator_id, {})


def test_wrong_password_and_unknown_user_look_the_same(station: Station) -> None:
    s = station
    with pytest.raises(InvalidCredentialsError) as wrong:
        s.auth.login("sam", "not the password")
    with pytest.raises(InvalidCredentialsError) as unknown:
        s.auth.login("mallory", "not the password")
    assert str(wrong.value) == str(unknown.value) == "Wrong username or password."
    failures = [a for a in s.actions() if a[0] == AuditAction.LOGIN_FAILED.value]
    assert failures[-1] == (
        "login.failed",
        None,
        {"username": "mallory", "reason": "unknown_username"},
    )
    assert failures[-2][2] == {"reason": "wrong_password", "failed_logins": 1}


def test_lockout_after_repeated_failures_then_unlocks_with_time(station: Station) -> None:
    s = station
    for _ in range(2):
        with pytest.raises(InvalidCredentialsError):
            s.auth.login("sam", "guess")
    s.clock.advance(seconds=30)
    with pytest.raises(AccountLockedError) as locked:
        s.auth.login("sam", "guess")  # third failure: locked until 10:15:30, shown 10:16
    assert str(locked.value) == "Account locked until 10:16 after too many failed logins."
    assert locked.value.locked_until == datetime(2025, 3, 14, 10, 15, 30, tzinfo=UTC)
    s.clock.advance(minutes=14)
    with pytest.raises(AccountLockedError, match="locked until 10:16"):
        s.auth.login("sam", STAFF_PASSWORD)  # even the right password while locked
    with pytest.raises(InvalidCredentialsError):
        s.auth.login("mallory", "guess")  # unknown users never lock
    s.clock.advance(minutes=1)
    assert s.auth.login("sam", STAFF_PASSWORD).username == "sam"
    lockouts = [a for a in s.actions() if a[0] == AuditAction.LOGIN_LOCKED_OUT.value]
    assert [a[2] for a in lockouts] == [{"locked_until": "2025-03-14T10:15:30+00:00"}]
    reasons = [a[2].get("reason") for a in s.actions() if a[0] == "login.failed"]
    assert reasons == [
        "wrong_password",
        "wrong_password",
        "wrong_password",
        "locked",
        "unknown_username",
    ]


def test_locked_time_is_shown_in_the_display_timezone(sqlite_station: Station) -> None:
    s = sqlite_station
    seoul = AuthService(
        s.database,
        settings=POLICY,
        clock=s.clock,
        hasher=fast_hasher(),
        display_timezone=timezone(timedelta(hours=9)),
    )
    for _ in range(2):
        with pytest.raises(InvalidCredentialsError):
            seoul.login("dana", "guess")
    with pytest.raises(AccountLockedError) as locked:
        seoul.login("dana", "guess")
    assert str(locked.value) == "Account locked until 19:15 after too many failed logins."


def test_session_times_out_after_inactivity(station: Station) -> None:
    s = station
    session = s.auth.login("sam", STAFF_PASSWORD)
    s.clock.advance(minutes=14)
    session.touch()
    s.clock.advance(minutes=14, seconds=59)
    assert session.expired is False
    assert s.auth.check(session) is session
    s.clock.advance(seconds=1)
    assert session.expired is True
    with pytest.raises(SessionExpiredError) as expired:
        session.touch()
    assert str(expired.value) == (
        "Your session timed out after 15 minutes without activity; please log in again."
    )
    with pytest.raises(SessionExpiredError):
        s.auth.check(session)
    assert s.actions()[-1] == (AuditAction.SESSION_EXPIRED.value, session.operator_id, {})


def test_logout_ends_the_session(sqlite_station: Station) -> None:
    s = sqlite_station
    session = s.auth.login("dana", DERM_PASSWORD)
    s.auth.logout(session)
    s.auth.logout(session)  # idempotent: audited once
    with pytest.raises(SessionExpiredError) as ended:
        session.touch()
    assert str(ended.value) == "Your session has ended (logged out); please log in again."
    assert [a for a in s.actions() if a[0] == "logout"] == [("logout", session.operator_id, {})]


def test_disabled_operator_cannot_log_in_and_loses_open_sessions(station: Station) -> None:
    s = station
    open_session = s.auth.login("sam", STAFF_PASSWORD)
    account = s.auth.disable_operator(s.admin, "sam")
    assert account.disabled is True
    assert open_session.expired is True
    with pytest.raises(SessionExpiredError) as ended:
        s.auth.check(open_session)
    assert str(ended.value) == "Your session has ended (account disabled); please log in again."
    with pytest.raises(AccountDisabledError) as disabled:
        s.auth.login("sam", STAFF_PASSWORD)
    assert str(disabled.value) == "This account is disabled; ask an administrator."
    with pytest.raises(InvalidCredentialsError, match=re.escape("Wrong username or password.")):
        s.auth.login("sam", "wrong password")  # no hint that the account exists
    s.auth.enable_operator(s.admin, "sam")
    assert s.auth.login("sam", STAFF_PASSWORD).username == "sam"
    disabled_rows = [a for a in s.actions() if a[0] == AuditAction.OPERATOR_DISABLED.value]
    assert disabled_rows == [("operator.disabled", s.admin.operator_id, {"username": "sam"})]


def test_disabling_in_another_process_invalidates_the_session(sqlite_station: Station) -> None:
    s = sqlite_station
    session = s.auth.login("dana", DERM_PASSWORD)
    other_process = AuthService(s.database, settings=POLICY, clock=s.clock, hasher=fast_hasher())
    other_process.disable_operator(other_process.login("root", ADMIN_PASSWORD), "dana")
    assert session.expired is False  # this process has not heard yet...
    with pytest.raises(SessionExpiredError, match="account disabled"):
        s.auth.check(session)  # ...but the database says so
    assert session.expired is True


def test_admin_rules(sqlite_station: Station) -> None:
    s = sqlite_station
    staff = s.auth.login("sam", STAFF_PASSWORD)
    with pytest.raises(PermissionDeniedError) as denied:
        s.auth.create_operator(staff, "eve", "Eve", Role.ADMIN, "a very long password")
    assert str(denied.value) == "A staff account may not manage operators."
    with pytest.raises(
        PermissionDeniedError, match=re.escape("You cannot disable your own account.")
    ):
        s.auth.disable_operator(s.admin, "root")
    with pytest.raises(
        OperatorExistsError, match=re.escape("The username 'sam' is already taken.")
    ):
        s.auth.create_operator(s.admin, "Sam", "Other Sam", Role.STAFF, "another long password")
    with pytest.raises(UnknownOperatorError, match=re.escape("There is no operator 'zed'.")):
        s.auth.disable_operator(s.admin, "zed")
    with pytest.raises(ValueError, match="Username must be 2-64 characters"):
        s.auth.create_operator(s.admin, "bad name!", "Bad", Role.STAFF, "another long password")
    listed = [(a.username, a.role) for a in s.auth.list_operators(s.admin)]
    assert listed == [("dana", Role.DERMATOLOGIST), ("root", Role.ADMIN), ("sam", Role.STAFF)]
    derm = s.auth.login("dana", DERM_PASSWORD)
    assert s.auth.require(derm, can_review) is derm
    with pytest.raises(PermissionDeniedError, match=re.escape("A staff account may not review.")):
        s.auth.require(staff, can_review)


def test_password_change_needs_the_old_password(station: Station) -> None:
    s = station
    session = s.auth.login("sam", STAFF_PASSWORD)
    with pytest.raises(InvalidCredentialsError) as wrong:
        s.auth.change_password(session, "not it", "a brand new phrase")
    assert str(wrong.value) == "The current password is wrong."
    with pytest.raises(PasswordPolicyError, match="must differ from the current one"):
        s.auth.change_password(session, STAFF_PASSWORD, STAFF_PASSWORD)
    with pytest.raises(PasswordPolicyError, match="at least 10 characters"):
        s.auth.change_password(session, STAFF_PASSWORD, "tiny")
    s.auth.change_password(session, STAFF_PASSWORD, "a brand new phrase")
    with pytest.raises(InvalidCredentialsError):
        s.auth.login("sam", STAFF_PASSWORD)
    assert s.auth.login("sam", "a brand new phrase").username == "sam"
    actions = [a[:2] for a in s.actions() if a[0].startswith("password.")]
    assert actions == [
        ("password.change_failed", session.operator_id),
        ("password.changed", session.operator_id),
    ]


def test_admin_reset_clears_lockout(sqlite_station: Station) -> None:
    s = sqlite_station
    for _ in range(3):
        with pytest.raises((InvalidCredentialsError, AccountLockedError)):
            s.auth.login("sam", "guess")
    s.auth.reset_password(s.admin, "sam", "reset by the admin")
    assert s.auth.login("sam", "reset by the admin").username == "sam"


def test_account_events_are_audited(sqlite_station: Station) -> None:
    created = [a for a in sqlite_station.actions() if a[0] == "operator.created"]
    root_id = sqlite_station.admin.operator_id
    assert created == [
        ("operator.created", root_id, {"username": "root", "role": "admin"}),
        ("operator.created", root_id, {"username": "sam", "role": "staff"}),
        ("operator.created", root_id, {"username": "dana", "role": "dermatologist"}),
    ]


def test_clear_passwords_never_reach_the_database_or_the_logs(
    settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    with open_backend(settings, "sqlite") as database:
        s = _station(database)
        staff = s.auth.login("sam", STAFF_PASSWORD)
        with pytest.raises(InvalidCredentialsError):
            s.auth.login("sam", "wrong-guess-password")
        s.auth.change_password(staff, STAFF_PASSWORD, "second secret phrase")
        s.auth.reset_password(s.admin, "dana", "third secret phrase")
        files = [settings.home / "station.db", settings.home / "station.db-wal"]
        stored = b"".join(path.read_bytes() for path in files if path.exists())
    secrets = [
        ADMIN_PASSWORD,
        STAFF_PASSWORD,
        DERM_PASSWORD,
        "wrong-guess-password",
        "second secret phrase",
        "third secret phrase",
    ]
    assert b"$argon2id$" in stored and b"sam" in stored  # the search does see the rows
    assert "operator 'sam' logged in" in caplog.text  # and the logs
    for secret in secrets:
        assert secret.encode() not in stored
        assert secret not in caplog.text


@pytest.mark.parametrize(
    ("section", "message"),
    [
        ({"min_password_length": 6}, "auth.min_password_length must be >= 8, got 6"),
        ({"max_failed_logins": 0}, "auth.max_failed_logins must be >= 1, got 0"),
        ({"lockout_minutes": 0}, "auth.lockout_minutes and auth.session_timeout_minutes"),
    ],
)
def test_auth_settings_refuse_unsafe_values(section: dict[str, float], message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        Settings.load(env={}, auth=section)
