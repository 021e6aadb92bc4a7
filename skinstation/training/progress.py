"""Progress lines with rate and ETA for long CPU jobs (feature caching, training, evaluation)."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import TextIO

Log = Callable[[str], None]


def print_log(message: str) -> None:
    """Default log sink: one line on stderr, flushed."""
    print(message, file=sys.stderr, flush=True)


def format_seconds(seconds: float) -> str:
    """Format a duration as ``1h02m``, ``3m05s`` or ``12s``."""
    seconds = max(0, round(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h{minutes:02d}m"
    if minutes:
        return f"{minutes}m{secs:02d}s"
    return f"{secs}s"


class Progress:
    """Counts work done and logs ``label done/total, rate, ETA`` at most every ``every`` s."""

    def __init__(
        self, label: str, total: int, log: Log = print_log, unit: str = "images",
        every: float = 10.0, clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.label, self.total, self.log, self.unit, self.every = label, total, log, unit, every
        self.clock = clock
        self.done = 0
        self.started = clock()
        self._last = self.started

    def update(self, count: int = 1) -> None:
        """Record ``count`` more units of work; log if enough time has passed."""
        self.done += count
        now = self.clock()
        if now - self._last >= self.every or self.done >= self.total:
            self._last = now
            self.log(self.line(now))

    def line(self, now: float | None = None) -> str:
        """The current progress line."""
        now = self.clock() if now is None else now
        elapsed = max(now - self.started, 1e-9)
        rate = self.done / elapsed
        remaining = (self.total - self.done) / rate if rate > 0 else float("inf")
        eta = format_seconds(remaining) if remaining != float("inf") else "?"
        return (
            f"[{self.label}] {self.done}/{self.total} {self.unit}, {rate:.1f}/s, "
            f"elapsed {format_seconds(elapsed)}, ETA {eta}"
        )


def stream_log(stream: TextIO) -> Log:
    """A log sink writing lines to ``stream``."""

    def write(message: str) -> None:
        stream.write(message + "\n")
        stream.flush()

    return write
