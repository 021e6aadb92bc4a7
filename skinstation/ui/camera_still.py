"""A still asked for from the GUI thread and taken from the live preview stream (issue 19).

While the preview runs, the camera thread is nearly always inside a blocking ``read()`` that
waits for the next frame; a queued "capture" slot waits behind it, and then read frames of its
own (dropping ``stale_frames`` first, then waiting for one more). That cost about 1.5 frame
periods with the simulated dermatoscope (~105 ms measured at 15 fps), up to three with a camera
whose dropped frames must arrive first, before classification could even start.

:class:`StillRequest` lets the preview loop answer the request instead: the first frame whose
read *ends after* the key press becomes the still, provided at least ``stale_frames`` frames
have been read since the light last switched (or the source opened) — the frames the
discard used to drop are exactly the ones the preview loop has already read and thrown away.
A still is therefore never older than the key press, and never lit by the previous band.
Commands sent to the camera thread before the key press (a band switch, the next simulated
lesion, reopening the source) are queued there; no frame answers a request while one of them
is still waiting, so the still shows what the operator asked for, as before.
Only the camera thread reads frames; the GUI thread only records the request (under a lock).
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable
from typing import Any


class StillRequest:
    """The open still request, shared by the GUI thread (asks) and the camera thread."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._requested: float | None = None
        self._commands = 0
        self.since_switch = 0
        """Frames read since the light last switched or the source opened (camera thread)."""

    @property
    def open(self) -> bool:
        """A still has been asked for and not taken yet."""
        with self._lock:
            return self._requested is not None

    def ask(self, requested_at: float) -> None:
        """Ask for a still (GUI thread); ``requested_at`` is ``time.perf_counter()``."""
        with self._lock:
            self._requested = requested_at

    def command_sent(self) -> None:
        """The GUI thread queued a command that changes the picture (band, lesion, source)."""
        with self._lock:
            self._commands += 1

    def command_done(self) -> None:
        """The camera thread ran one such command (at the end of its slot)."""
        with self._lock:
            self._commands = max(0, self._commands - 1)

    def light_switched(self) -> None:
        """The light switched or the source (re)opened: earlier frames are stale."""
        self.since_switch = 0

    def frame_read(self, read_done: float, stale_frames: int) -> float | None:
        """Camera thread, after each preview read that ended at ``read_done``.

        Returns:
            The request time this frame answers (the request is then closed), or None if no
            request is open, the frame was read before it, it is a stale frame, or a command
            sent before it still waits.
        """
        self.since_switch += 1
        with self._lock:
            requested = self._requested
            if (requested is None or read_done <= requested or self._commands
                    or self.since_switch <= stale_frames):
                return None
            self._requested = None
            return requested

    def claim(self, requested_at: float) -> bool:
        """Close the request ``requested_at`` if still open; False if a frame answered it."""
        with self._lock:
            if self._requested is None or self._requested != requested_at:
                return False
            self._requested = None
            return True

    def stale_left(self, stale_frames: int, streaming: bool) -> int:
        """Frames still to drop before a still read now is fresh.

        While the preview streams, the frames it read since the last switch count; otherwise
        (the driver may hold frames from before) all ``stale_frames`` are dropped.
        """
        if not streaming:
            return stale_frames
        return max(0, stale_frames - self.since_switch)


def queued_command(slot: Callable[..., None]) -> Callable[..., None]:
    """Decorates a worker slot the GUI queues after :meth:`StillRequest.command_sent`.

    The slot's owner has a ``still`` (:class:`StillRequest`); the command counts as done when
    the slot returns or raises.
    """

    @functools.wraps(slot)
    def run(self: Any, *args: object) -> None:
        try:
            slot(self, *args)
        finally:
            self.still.command_done()

    return run
