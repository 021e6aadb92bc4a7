"""A sliding-window throttle of failed attempts, per key (a username, a client address).

A key that failed ``limit`` times within the last ``window_seconds`` must wait until the oldest
of those failures leaves the window; while it waits its attempts are refused without being
tried (a right password too), and refused attempts are not counted, so a client that keeps
retrying is not pushed further back. The station's operator login and the engine's API login
both use it (:mod:`skinstation.auth.service`, :mod:`skinstation.engine.accounts.throttle`).

An attempt is announced when it starts (:meth:`SlidingWindowThrottle.begin`) and concluded as
failed (:meth:`~SlidingWindowThrottle.fail`) or not (:meth:`~SlidingWindowThrottle.cancel`).
Attempts running at the same time count against the limit until they conclude, so parallel
requests cannot together get past it; one that would only be over the limit because of such
running attempts waits for them (up to ``timeout``) instead of being refused.

State lives in memory, in one process, and is bounded: at most ``max_keys`` keys are tracked
(the ones idle longest are forgotten first). The clock is injectable (seconds as a float;
:func:`time.monotonic` by default), so tests move time instead of sleeping.
"""

from __future__ import annotations

import itertools
import math
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass, field

SecondsClock = Callable[[], float]
"""Returns the current time in seconds (only differences matter)."""


class ThrottledError(Exception):
    """A key must wait before its next attempt.

    Attributes:
        key: The throttled key.
        wait_seconds: How long it must still wait.
    """

    def __init__(self, key: str, wait_seconds: float) -> None:
        super().__init__(f"{key!r} must wait {wait_seconds:.1f} s")
        self.key = key
        self.wait_seconds = wait_seconds


@dataclass(frozen=True)
class Attempt:
    """An attempt announced by :meth:`SlidingWindowThrottle.begin`."""

    key: str


@dataclass
class _Key:
    failures: deque[float] = field(default_factory=deque)
    running: int = 0


class SlidingWindowThrottle:
    """Counts failures per key over a sliding window and says how long a key must wait.

    Thread-safe.

    Args:
        limit: Failures within the window after which the key waits (at least 1).
        window_seconds: Length of the window (> 0).
        clock: Source of the time in seconds.
        max_keys: Keys tracked at most; beyond that the longest idle one is dropped.

    Raises:
        ValueError: On a limit below 1, a window or ``max_keys`` not positive.
    """

    def __init__(self, limit: int, window_seconds: float, *,
                 clock: SecondsClock = time.monotonic, max_keys: int = 100_000) -> None:
        if limit < 1 or window_seconds <= 0 or max_keys < 1:
            raise ValueError(f"throttle needs limit >= 1, window > 0 and max_keys >= 1; got "
                             f"{limit}, {window_seconds}, {max_keys}")
        self.limit = limit
        self.window = float(window_seconds)
        self.clock = clock
        self.max_keys = max_keys
        self._keys: OrderedDict[str, _Key] = OrderedDict()
        self._changed = threading.Condition()

    def wait_seconds(self, key: str) -> float:
        """Seconds ``key`` must still wait before its next attempt (0.0: it may try now)."""
        with self._changed:
            return self._wait(key, self.clock())

    def failures(self, key: str) -> int:
        """Failures of ``key`` inside the window."""
        with self._changed:
            state = self._current(key, self.clock())
            return 0 if state is None else len(state.failures)

    def begin(self, key: str, *, timeout: float = 0.0) -> Attempt:
        """Start an attempt of ``key``; conclude it with :meth:`fail` or :meth:`cancel`.

        Args:
            key: Whose attempt.
            timeout: Seconds (real time) to wait for attempts of ``key`` still running when
                only they stand between it and the limit.

        Raises:
            ThrottledError: The key failed ``limit`` times in the window; nothing is counted.
            TimeoutError: Running attempts did not conclude within ``timeout``.
        """
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                now = self.clock()
                wait = self._wait(key, now)
                if wait > 0:
                    raise ThrottledError(key, wait)
                state = self._current(key, now) or self._add(key)
                if len(state.failures) + state.running < self.limit:
                    state.running += 1
                    self._keys.move_to_end(key)
                    return Attempt(key)
                left = deadline - time.monotonic()
                if left <= 0 or not self._changed.wait(left):
                    raise TimeoutError(f"attempts of {key!r} still running")

    def fail(self, attempt: Attempt) -> None:
        """Conclude an attempt as failed: it counts from now on."""
        with self._changed:
            state = self._finish(attempt)
            state.failures.append(self.clock())
            self._changed.notify_all()

    def cancel(self, attempt: Attempt, *, forget: bool = False) -> None:
        """Conclude an attempt that did not fail; ``forget`` also drops the key's failures.

        Args:
            attempt: What :meth:`begin` returned.
            forget: Forget every failure of the key (after a successful login).
        """
        with self._changed:
            state = self._finish(attempt)
            if forget:
                state.failures.clear()
            if not state.failures and not state.running:
                self._keys.pop(attempt.key, None)
            self._changed.notify_all()

    def _add(self, key: str) -> _Key:
        """Track ``key``, dropping the longest idle keys beyond ``max_keys``."""
        state = self._keys[key] = _Key()
        excess = len(self._keys) - self.max_keys
        if excess > 0:
            idle = (k for k, s in self._keys.items() if not s.running and k != key)
            for old in list(itertools.islice(idle, excess)):
                del self._keys[old]
        return state

    def _finish(self, attempt: Attempt) -> _Key:
        state = self._keys.get(attempt.key)
        if state is None:  # dropped while running: track it again
            state = self._add(attempt.key)
        else:
            state.running = max(0, state.running - 1)
        return state

    def _wait(self, key: str, now: float) -> float:
        state = self._current(key, now)
        if state is None or len(state.failures) < self.limit:
            return 0.0
        # It may try again once only limit - 1 failures remain inside the window.
        return max(0.0, state.failures[len(state.failures) - self.limit] + self.window - now)

    def _current(self, key: str, now: float) -> _Key | None:
        """The key's state with failures out of the window dropped (``None``: nothing left)."""
        state = self._keys.get(key)
        if state is None:
            return None
        while state.failures and state.failures[0] <= now - self.window:
            state.failures.popleft()
        if not state.failures and not state.running:
            del self._keys[key]
            return None
        return state


def whole_seconds(wait: float) -> int:
    """A wait rounded up to whole seconds, at least 1 (for Retry-After and messages)."""
    return max(1, math.ceil(wait))
