"""Login throttling: the shared sliding window, the engine's API login against a real server
(per client address and per username, 429 with Retry-After, argon2 off the event loop so
``/health`` stays fast) and the station's operator login (injected clock)."""

from __future__ import annotations

import asyncio
import dataclasses
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import requests
from requests.adapters import HTTPAdapter
from sqlalchemy import func, select

from skinstation.auth import AuthService, InvalidCredentialsError, LoginThrottledError, Role
from skinstation.core.throttle import SlidingWindowThrottle, ThrottledError
from skinstation.engine.accounts.models import Account, AccountRole
from skinstation.engine.accounts.service import create_account
from skinstation.engine.accounts.throttle import LoginGuard, address_key
from skinstation.engine.audit.models import AuditEvent
from skinstation.engine.errors import (
    LockedError,
    RateLimitedError,
    UnauthorizedError,
    UnavailableError,
)
from skinstation.settings import AuthSettings, Settings
from skinstation.storage import AuditEvent as StationAuditEvent
from tests.test_auth import fast_hasher
from tests.test_engine_helpers import (
    ADMIN_PASSWORD,
    DERM_PASSWORD,
    EngineUnderTest,
    make_tls,
    start_engine,
)
from tests.test_storage_helpers import FakeClock, open_backend

WINDOW = 15 * 60  # auth.throttle_minutes by default


class Seconds:
    """A seconds clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


# -- the shared throttle ---------------------------------------------------------------------

def test_a_key_waits_until_its_oldest_failure_leaves_the_window() -> None:
    clock = Seconds()
    throttle = SlidingWindowThrottle(3, 600, clock=clock)
    for offset in (0, 100, 200):
        clock.now = 1000.0 + offset
        throttle.fail(throttle.begin("sam"))
    assert throttle.wait_seconds("sam") == 400.0  # the failure at 0 leaves at 600
    with pytest.raises(ThrottledError) as refused:
        throttle.begin("sam")
    assert (refused.value.key, refused.value.wait_seconds) == ("sam", 400.0)
    assert throttle.failures("sam") == 3  # a refused attempt is not counted
    assert throttle.wait_seconds("dana") == 0.0
    clock.now = 1600.0
    assert (throttle.wait_seconds("sam"), throttle.failures("sam")) == (0.0, 2)
    throttle.cancel(throttle.begin("sam"))  # an attempt that did not fail
    assert (throttle.wait_seconds("sam"), throttle.failures("sam")) == (0.0, 2)
    throttle.fail(throttle.begin("sam"))
    assert throttle.wait_seconds("sam") == 100.0  # the one at 100 leaves at 700
    clock.now = 1700.0
    throttle.cancel(throttle.begin("sam"), forget=True)  # a success forgets the key
    assert throttle.failures("sam") == 0


def test_running_attempts_hold_places_so_parallel_ones_cannot_pass_the_limit() -> None:
    clock = Seconds()
    throttle = SlidingWindowThrottle(2, 60, clock=clock)
    throttle.fail(throttle.begin("a"))
    running = throttle.begin("a")  # one failure and one running: the limit is reached
    with pytest.raises(TimeoutError, match="attempts of 'a' still running"):
        throttle.begin("a")
    results: list[str] = []

    def third() -> None:
        try:
            throttle.begin("a", timeout=30)
            results.append("began")
        except ThrottledError as error:
            results.append(f"throttled {error.wait_seconds:.0f}")

    waiter = threading.Thread(target=third)
    waiter.start()
    time.sleep(0.2)
    assert results == []  # waits for the running attempt, neither refused nor counted
    throttle.fail(running)  # it failed: now the key is over the limit, so the wait ends in 429
    waiter.join(10)
    assert results == ["throttled 60"]
    clock.now += 60
    throttle.cancel(throttle.begin("a"))
    assert throttle.failures("a") == 0


def test_keys_are_bounded_and_a_bad_limit_is_refused() -> None:
    throttle = SlidingWindowThrottle(2, 60, clock=Seconds(), max_keys=3)
    for key in "abcd":
        throttle.fail(throttle.begin(key))
    assert [throttle.failures(k) for k in "abcd"] == [0, 1, 1, 1]  # "a" idled longest
    with pytest.raises(ValueError, match="limit >= 1"):
        SlidingWindowThrottle(0, 60)


def test_client_addresses_are_keyed_by_ipv4_address_and_ipv6_slash_64() -> None:
    assert address_key("192.0.2.7") == "address:192.0.2.7"
    assert address_key("2001:db8:1:2:aaaa::1") == address_key("2001:db8:1:2:ffff::9") == (
        "address:2001:db8:1:2::/64")
    assert address_key("2001:db8:1:3::1") == "address:2001:db8:1:3::/64"
    assert address_key("::ffff:192.0.2.7") == "address:192.0.2.7"
    assert (address_key(None), address_key("testclient")) == (
        "address:unknown", "address:testclient")


# -- the engine, served by uvicorn on 127.0.0.1 ------------------------------------------------

@pytest.fixture(scope="module")
def engine(tmp_path_factory: pytest.TempPathFactory, data_dir: Path) -> Iterator[EngineUnderTest]:
    folder = tmp_path_factory.mktemp("throttle-engine")
    running = start_engine(folder, data_dir, make_tls(folder / "tls"))
    yield running
    running.server.stop()
    running.db.dispose()


class _FromAddress(HTTPAdapter):
    """Connect from a given local address (any of 127.0.0.0/8 reaches the server)."""

    def __init__(self, address: str) -> None:
        self.address = address
        super().__init__()

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        kwargs["source_address"] = (self.address, 0)
        super().init_poolmanager(*args, **kwargs)


class Client:
    """Requests to the engine from one client address."""

    def __init__(self, engine: EngineUnderTest, address: str) -> None:
        self.engine = engine
        self.session = requests.Session()
        self.session.mount("https://", _FromAddress(address))
        self.verify = str(engine.tls.ca_cert)  # per request: REQUESTS_CA_BUNDLE would win

    def login(self, username: str, password: str) -> requests.Response:
        return self.session.post(f"{self.engine.url}/api/v1/auth/login",
                                 json={"username": username, "password": password},
                                 headers={"Connection": "close"}, verify=self.verify,
                                 timeout=60)

    def health(self) -> requests.Response:
        return self.session.get(f"{self.engine.url}/api/v1/health",
                                headers={"Connection": "close"}, verify=self.verify, timeout=60)


def _audited(engine: EngineUnderTest, action: str, actor: str) -> int:
    with engine.db.transaction() as session:
        return session.scalar(select(func.count()).select_from(AuditEvent).where(
            AuditEvent.action == action, AuditEvent.actor == actor)) or 0


def _retry_after(response: requests.Response) -> int:
    assert response.status_code == 429, response.text
    seconds = int(response.headers["Retry-After"])
    assert WINDOW - 30 <= seconds <= WINDOW
    return seconds


def test_failed_logins_from_one_address_get_429_with_retry_after_even_the_right_password(
    engine: EngineUnderTest
) -> None:
    attacker, colleague = Client(engine, "127.0.0.2"), Client(engine, "127.0.0.3")
    answers = [attacker.login("ghost", f"guess-number-{n}") for n in range(10)]
    assert [(a.status_code, a.json()["detail"]) for a in answers] == [
        (401, "wrong username or password")] * 10

    refused = attacker.login("ghost", "guess-number-10")
    seconds = _retry_after(refused)
    assert refused.json() == {
        "detail": f"too many failed logins for this username; try again in {seconds} s"}
    right = attacker.login("admin", ADMIN_PASSWORD)  # the right password waits too
    seconds = _retry_after(right)
    assert right.json() == {
        "detail": f"too many failed logins from this address; try again in {seconds} s"}
    assert _audited(engine, "login.failed", "anonymous:ghost") == 10  # never checked

    # another address: the account logs in; the guessed username stays throttled
    assert colleague.login("admin", ADMIN_PASSWORD).status_code == 200
    _retry_after(colleague.login("ghost", "guess-number-11"))
    assert _audited(engine, "login.failed", "anonymous:ghost") == 10


def test_password_spraying_across_ten_usernames_from_one_address_is_throttled(
    engine: EngineUnderTest
) -> None:
    sprayer, other = Client(engine, "127.0.0.4"), Client(engine, "127.0.0.5")
    names = ["drlee", "admin", *(f"user{n}" for n in range(8))]
    answers = [sprayer.login(name, "Summer2025!") for name in names]
    assert [a.status_code for a in answers] == [401] * 10

    refused = sprayer.login("user8", "Summer2025!")
    seconds = _retry_after(refused)
    assert refused.json() == {
        "detail": f"too many failed logins from this address; try again in {seconds} s"}
    _retry_after(sprayer.login("drlee", DERM_PASSWORD))
    assert _audited(engine, "login.failed", "anonymous:user8") == 0
    # one failure per username is far from their own limit: elsewhere they still log in
    assert other.login("drlee", DERM_PASSWORD).status_code == 200
    assert other.login("user0", "Summer2025!").status_code == 401


def test_the_review_web_form_shares_the_api_throttle(engine: EngineUnderTest) -> None:
    form = Client(engine, "127.0.0.6")

    def web_login(username: str, password: str) -> requests.Response:
        return form.session.post(f"{engine.url}/review/login",
                                 data={"username": username, "password": password},
                                 headers={"Connection": "close"}, verify=form.verify,
                                 timeout=60, allow_redirects=False)

    assert [web_login(f"web{n}", "Winter2025!").status_code for n in range(10)] == [401] * 10
    refused = web_login("drlee", DERM_PASSWORD)
    assert refused.status_code == 429
    assert "too many failed logins from this address" in refused.text
    assert form.login("drlee", DERM_PASSWORD).status_code == 429  # the API counts them too
    assert Client(engine, "127.0.0.7").login("drlee", DERM_PASSWORD).status_code == 200


def test_health_stays_fast_while_sixteen_logins_run_in_parallel(
    engine: EngineUnderTest
) -> None:
    prober = Client(engine, "127.0.0.6")
    assert prober.health().status_code == 200

    def log_in(_index: int) -> int:
        return Client(engine, "127.0.0.7").login("admin", ADMIN_PASSWORD).status_code

    latencies = []
    with ThreadPoolExecutor(16) as pool:
        began = time.monotonic()
        logins = [pool.submit(log_in, n) for n in range(16)]
        while not all(login.done() for login in logins):
            start = time.monotonic()
            assert prober.health().status_code == 200
            latencies.append(time.monotonic() - start)
        took = time.monotonic() - began
    assert [login.result() for login in logins] == [200] * 16
    assert len(latencies) >= 2, (took, latencies)  # the probes ran while the logins did
    assert max(latencies) < 0.5, (took, sorted(latencies))


def test_the_pool_refuses_logins_beyond_its_places_and_the_window_moves_with_the_clock(
    engine: EngineUnderTest
) -> None:
    clock = Seconds()
    settings = engine.settings.replace(engine=dataclasses.replace(
        engine.settings.engine, login_threads=1, login_queue=0, login_failures_per_address=3))
    guard = LoginGuard(settings, clock=clock)
    db = engine.db

    async def two_at_once() -> list[object]:
        return await asyncio.gather(
            guard.login(db, "drlee", DERM_PASSWORD, "192.0.2.1"),
            guard.login(db, "admin", ADMIN_PASSWORD, "192.0.2.1"), return_exceptions=True)

    first, second = asyncio.run(two_at_once())
    assert getattr(first, "username", None) == "drlee"
    assert isinstance(second, UnavailableError)
    assert (second.status_code, second.retry_after, str(second)) == (
        503, 1, "too many logins in progress; try again in a second")

    for n in range(3):
        with pytest.raises(UnauthorizedError):
            guard.login_blocking(db, f"nobody{n}", "wrong password", "192.0.2.2")
    with pytest.raises(RateLimitedError) as throttled:
        guard.login_blocking(db, "admin", ADMIN_PASSWORD, "192.0.2.2")
    assert (throttled.value.status_code, throttled.value.retry_after) == (429, WINDOW)
    clock.now += WINDOW - 1
    with pytest.raises(RateLimitedError, match="try again in 1 s"):
        guard.login_blocking(db, "admin", ADMIN_PASSWORD, "192.0.2.2")
    clock.now += 1
    assert guard.login_blocking(db, "admin", ADMIN_PASSWORD, "192.0.2.2").username == "admin"
    guard.shutdown()


def test_engine_lockout_still_works_and_locked_attempts_are_not_counted(
    engine: EngineUnderTest
) -> None:
    create_account(engine.db, "lockme", "lock-me-passphrase-1", AccountRole.DERMATOLOGIST,
                   actor="test")
    guard = LoginGuard(engine.settings, clock=Seconds())
    for n in range(5):
        with pytest.raises(UnauthorizedError, match="wrong username or password"):
            guard.login_blocking(engine.db, "lockme", f"wrong-guess-{n}", "192.0.2.9")
    with engine.db.transaction() as session:
        account = session.scalar(select(Account).where(Account.username == "lockme"))
        assert account is not None and account.locked_until is not None
        until = account.locked_until
    for _ in range(2):  # the right password too, and without counting against the address
        with pytest.raises(LockedError) as locked:
            guard.login_blocking(engine.db, "lockme", "lock-me-passphrase-1", "192.0.2.9")
        assert str(locked.value) == (
            f"account locked after 5 failed logins until {until.isoformat(timespec='seconds')}")
    assert guard.by_address.failures("address:192.0.2.9") == 5
    assert guard.by_username.failures("username:lockme") == 5
    assert _audited(engine, "login.failed", "account:lockme") == 5
    guard.shutdown()


# -- the station's operator login --------------------------------------------------------------

def test_station_login_throttles_a_username_after_repeated_failures(settings: Settings) -> None:
    policy = AuthSettings(max_failed_logins=10, throttle_failures=3, throttle_minutes=10)
    clock = FakeClock(datetime(2025, 3, 14, 10, 0, tzinfo=UTC))
    with open_backend(settings, "sqlite") as database:
        auth = AuthService(database, settings=policy, clock=clock, hasher=fast_hasher(),
                           display_timezone=UTC)
        auth.create_first_admin("root", "Station Admin", "correct horse battery")
        admin = auth.login("root", "correct horse battery")
        auth.create_operator(admin, "sam", "Sam Staff", Role.STAFF, "staple-violet-42")

        for minute in (0, 2, 4):
            clock.now = datetime(2025, 3, 14, 10, minute, tzinfo=UTC)
            with pytest.raises(InvalidCredentialsError):
                auth.login("sam", "wrong guess")
        with pytest.raises(LoginThrottledError) as refused:
            auth.login("sam", "staple-violet-42")  # the right password waits too
        assert str(refused.value) == (
            "Too many failed logins for this username; wait 6 minutes and try again.")
        assert refused.value.wait_seconds == 360  # until 10:10, when the 10:00 failure leaves
        clock.advance(seconds=359)
        with pytest.raises(LoginThrottledError) as refused:
            auth.login("sam", "staple-violet-42")
        assert str(refused.value) == (
            "Too many failed logins for this username; wait 1 second and try again.")
        clock.advance(seconds=1)
        assert auth.login("sam", "staple-violet-42").username == "sam"

        # a success forgets the failures; unknown usernames are throttled the same way
        for _ in range(3):
            with pytest.raises(InvalidCredentialsError):
                auth.login("sam", "wrong guess")
            with pytest.raises(InvalidCredentialsError):
                auth.login("nobody", "wrong guess")
        with pytest.raises(LoginThrottledError, match="wait 10 minutes"):
            auth.login("nobody", "wrong guess")
        with pytest.raises(LoginThrottledError, match="wait 10 minutes"):
            auth.login("sam", "wrong guess")
        assert auth.login("root", "correct horse battery").username == "root"

        with database.transaction() as session:
            rows = session.scalars(select(StationAuditEvent).where(
                StationAuditEvent.action == "login.failed").order_by(StationAuditEvent.id))
            reasons = [r.detail.get("reason") for r in rows]
        assert reasons == (["wrong_password"] * 3 + ["throttled"] * 2
                           + ["wrong_password", "unknown_username"] * 3 + ["throttled"] * 2)
        with database.transaction() as session:
            lockouts = session.scalar(select(func.count()).select_from(StationAuditEvent).where(
                StationAuditEvent.action == "login.locked_out"))
        assert lockouts == 0  # throttled attempts never reached the password check or the lockout
