"""Engine logins: throttled per client address and per username, hashed in a bounded pool.

Password guessing and spraying are slowed by two sliding windows of failed logins
(:mod:`skinstation.core.throttle`): ``engine.login_failures_per_address`` per client address
(an IPv6 address counts as its /64, which one client usually holds whole) and
``auth.throttle_failures`` per username, both over ``auth.throttle_minutes``. Past either, a
login is answered 429 with ``Retry-After`` before its password is looked at, whether it is
right or not. Per-account lockout (423, stored in the database) works as before.

argon2 is slow and memory-hard on purpose, so a burst of logins must not take every core and
database connection: each login runs in one of ``engine.login_threads`` pool threads (off the
event loop, outside the server's shared thread pool), at most ``engine.login_queue`` more wait
for one, and any beyond that are refused at once with 503.

All of this is per API process (each uvicorn worker counts on its own). Behind a proxy, the
client address is the one uvicorn takes from ``X-Forwarded-For`` when the proxy is trusted
(``--allow-plain-http`` turns proxy headers on).
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import os
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor

from skinstation.core.throttle import (
    Attempt,
    SecondsClock,
    SlidingWindowThrottle,
    ThrottledError,
    whole_seconds,
)
from skinstation.core.usernames import normalise_username
from skinstation.engine.accounts import service as accounts
from skinstation.engine.accounts.schemas import LoginResponse
from skinstation.engine.database import EngineDatabase
from skinstation.engine.errors import RateLimitedError, UnauthorizedError, UnavailableError
from skinstation.settings import Settings

log = logging.getLogger(__name__)

Keyed = tuple[SlidingWindowThrottle, str]
RUNNING_WAIT_SECONDS = 30.0
"""How long a login waits for parallel attempts of its address or username to conclude."""

ARGON2_LANES = 4
"""Threads one argon2 verification uses (argon2-cffi's default parallelism)."""


def address_key(host: str | None) -> str:
    """The throttle key of a client address: IPv4 as is, IPv6 by its /64 network."""
    if not host:
        return "address:unknown"
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return f"address:{host[:100]}"
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return f"address:{ip.ipv4_mapped}"
        return f"address:{ipaddress.IPv6Network((ip, 64), strict=False)}"
    return f"address:{ip}"


def default_login_threads() -> int:
    """One hashing thread per :data:`ARGON2_LANES` usable cores, at least one."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cores = os.cpu_count() or 1
    return max(1, cores // ARGON2_LANES)


class LoginGuard:
    """The engine's login front: throttles, then checks the password in the hashing pool.

    One per app (``app.state.login_guard``). Thread-safe.

    Args:
        settings: Supplies ``auth.throttle_*`` and ``engine.login_*``.
        clock: Source of the time in seconds for the throttles (tests inject one).
    """

    def __init__(self, settings: Settings, *, clock: SecondsClock = time.monotonic) -> None:
        window = settings.auth.throttle_minutes * 60.0
        engine = settings.engine
        self.by_address = SlidingWindowThrottle(engine.login_failures_per_address, window,
                                                clock=clock)
        self.by_username = SlidingWindowThrottle(settings.auth.throttle_failures, window,
                                                 clock=clock)
        self.threads = engine.login_threads or default_login_threads()
        if self.threads < 1 or engine.login_queue < 0:
            raise ValueError("engine.login_threads must be >= 0 and engine.login_queue >= 0")
        self._executor = ThreadPoolExecutor(self.threads, thread_name_prefix="login")
        self._slots = threading.BoundedSemaphore(self.threads + engine.login_queue)

    async def login(self, db: EngineDatabase, username: str, password: str,
                    client: str | None) -> LoginResponse:
        """Log in from ``client`` (an address) without blocking the event loop.

        Raises:
            RateLimitedError: Too many failed logins from this address or for this username.
            UnavailableError: Every hashing thread and waiting place is taken.
            UnauthorizedError: As :func:`accounts.login` (counted as a failure).
            LockedError: As :func:`accounts.login` (not counted: no password was checked).
        """
        return await asyncio.wrap_future(self._submit(db, username, password, client))

    def login_blocking(self, db: EngineDatabase, username: str, password: str,
                       client: str | None) -> LoginResponse:
        """:meth:`login` for a caller on a worker thread (e.g. a form-handling route)."""
        return self._submit(db, username, password, client).result()

    def shutdown(self) -> None:
        """Stop the hashing threads (running logins finish)."""
        self._executor.shutdown(wait=True, cancel_futures=True)

    # -- steps -----------------------------------------------------------------------------

    def _keys(self, client: str | None, username: str) -> tuple[Keyed, Keyed]:
        return ((self.by_address, address_key(client)),
                (self.by_username, f"username:{normalise_username(username)}"))

    def _submit(self, db: EngineDatabase, username: str, password: str,
                client: str | None) -> Future[LoginResponse]:
        """Refuse a throttled login at once (429), else queue it on the pool (503 if full)."""
        keys = self._keys(client, username)
        _refuse_if_throttled(keys)
        if not self._slots.acquire(blocking=False):
            raise UnavailableError("too many logins in progress; try again in a second",
                                   retry_after=1)
        try:
            future = self._executor.submit(self._guarded, keys, db, username, password)
        except BaseException:
            self._slots.release()
            raise
        future.add_done_callback(lambda _done: self._slots.release())
        return future

    def _guarded(self, keys: tuple[Keyed, Keyed], db: EngineDatabase, username: str,
                 password: str) -> LoginResponse:
        """On a pool thread: count the attempt against both keys, then check the password."""
        started: list[tuple[SlidingWindowThrottle, Attempt]] = []
        try:
            for throttle, key in keys:  # always address first: waits cannot form a cycle
                started.append((throttle, throttle.begin(key, timeout=RUNNING_WAIT_SECONDS)))
        except ThrottledError as error:
            for throttle, attempt in started:
                throttle.cancel(attempt)
            raise _rate_limited(error.key, error.wait_seconds) from None
        except TimeoutError:
            for throttle, attempt in started:
                throttle.cancel(attempt)
            raise UnavailableError("too many logins in progress; try again in a second",
                                   retry_after=1) from None
        try:
            result = accounts.login(db, username, password)
        except UnauthorizedError:
            for throttle, attempt in started:
                throttle.fail(attempt)
                wait = throttle.wait_seconds(attempt.key)
                if wait > 0:
                    log.warning("logins %s throttled for %d s after %d failures",
                                attempt.key, whole_seconds(wait), throttle.limit)
            raise
        except BaseException:  # locked (no password checked) or a fault: not a guess
            for throttle, attempt in started:
                throttle.cancel(attempt)
            raise
        for throttle, attempt in started:  # a success forgets the username's failures
            throttle.cancel(attempt, forget=throttle is self.by_username)
        return result


def _refuse_if_throttled(keys: tuple[Keyed, Keyed]) -> None:
    """Raise 429 with the longer wait of the two keys, if either must wait."""
    wait, key = max((throttle.wait_seconds(key), key) for throttle, key in keys)
    if wait > 0:
        raise _rate_limited(key, wait)


def _rate_limited(key: str, wait: float) -> RateLimitedError:
    why = "from this address" if key.startswith("address:") else "for this username"
    seconds = whole_seconds(wait)
    return RateLimitedError(f"too many failed logins {why}; try again in {seconds} s",
                            retry_after=seconds)
