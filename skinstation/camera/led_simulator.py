"""A simulated LED controller on a pseudo-terminal, speaking the protocol of ``illumination``.

The simulator opens a pty pair (``os.openpty``), plays the controller on the master side in
a background thread and publishes the slave side's path as :attr:`LedControllerSimulator.port`,
which :class:`~skinstation.camera.illumination.SerialIlluminator` opens with pyserial like a
real ``/dev/ttyACM0``. Used by tests and by the demo (``illuminator_port = "simulator"``).

It can also misbehave like real hardware: stay silent (``behaviour="silent"``), answer
garbage (``behaviour="garbage"``), answer late (``reply_delay_seconds``), or report a
hardware fault for some bands (``faults``).
:meth:`LedControllerSimulator.stop` is the cable being pulled.
"""

from __future__ import annotations

import contextlib
import os
import select
import threading
import tty
from collections.abc import Mapping, Sequence
from types import TracebackType
from typing import Literal, Self

from skinstation.camera.illumination import BANDS

Behaviour = Literal["normal", "silent", "garbage"]

MAX_LINE_BYTES = 64
GARBAGE_REPLY = b"\xfe\x80#?~\n"


class LedControllerSimulator:
    """A thread that plays the LED controller on a pseudo-terminal.

    Args:
        bands: Bands the controller has (default: all known bands).
        behaviour: ``normal``, ``silent`` (reads but never answers) or ``garbage``; may be
            changed while running.
        faults: Band name → hardware-fault text answered as ``ERR 3 <text>``.
        reply_delay_seconds: Wait this long before each reply (a slow controller); may be
            changed while running.

    Attributes:
        port: Path of the pty's slave side (set by :meth:`start`).
        lit: The band currently lit, or None when all LEDs are off.
        received: Every command line received, in order.
    """

    def __init__(
        self,
        bands: Sequence[str] = tuple(BANDS),
        behaviour: Behaviour = "normal",
        faults: Mapping[str, str] | None = None,
        reply_delay_seconds: float = 0.0,
    ) -> None:
        self.bands = tuple(bands)
        self.behaviour: Behaviour = behaviour
        self.faults = dict(faults or {})
        self.reply_delay_seconds = reply_delay_seconds
        self.port = ""
        self.lit: str | None = None
        self.received: list[str] = []
        self._master = -1
        self._slave = -1
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> str:
        """Open the pty, start answering and return the port path."""
        if self._thread is not None:
            return self.port
        self._master, self._slave = os.openpty()
        tty.setraw(self._slave)  # no echo or line editing before the host configures the port
        self.port = os.ttyname(self._slave)
        self._stop.clear()
        self._thread = threading.Thread(target=self._serve, name="led-controller-sim", daemon=True)
        self._thread.start()
        return self.port

    def stop(self) -> None:
        """Stop answering and close the pty (like pulling the controller's cable)."""
        if self._thread is None:
            return
        self._stop.set()
        self._thread.join(timeout=2.0)
        self._thread = None
        for descriptor in (self._master, self._slave):
            with contextlib.suppress(OSError):
                os.close(descriptor)
        self._master = self._slave = -1

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    def reply_to(self, line: str) -> str:
        """The reply line (without the newline) a well-behaved controller gives to ``line``."""
        if len(line.encode("ascii", "replace")) > MAX_LINE_BYTES:
            return "ERR 4 line too long"
        words = line.split()
        if words == ["PING"]:
            return "PONG"
        if words == ["BANDS"]:
            return " ".join(("BANDS", *self.bands))
        if words == ["OFF"]:
            self.lit = None
            return "OK OFF"
        if words == ["STATUS"]:
            return f"STATUS {self.lit or 'OFF'}"
        if len(words) == 2 and words[0] == "BAND":
            name = words[1]
            if name not in self.bands:
                return f"ERR 2 unknown band {name}"
            if name in self.faults:
                self.lit = None
                return f"ERR 3 {self.faults[name]}"
            self.lit = name
            return f"OK BAND {name}"
        return f"ERR 1 unknown command {words[0] if words else '(empty)'}"

    def _serve(self) -> None:
        pending = b""
        while not self._stop.is_set():
            ready, _, _ = select.select([self._master], [], [], 0.02)
            if not ready:
                continue
            try:
                chunk = os.read(self._master, 256)
            except OSError:
                return
            pending += chunk
            while b"\n" in pending:
                raw, pending = pending.split(b"\n", 1)
                self._answer(raw.rstrip(b"\r").decode("ascii", "replace"))
            if len(pending) > MAX_LINE_BYTES:
                pending = b""
                self._write(b"ERR 4 line too long\n")

    def _answer(self, line: str) -> None:
        self.received.append(line)
        if self.behaviour == "silent":
            return
        if self.reply_delay_seconds > 0:
            self._stop.wait(self.reply_delay_seconds)
        if self.behaviour == "garbage":
            self._write(GARBAGE_REPLY)
            return
        self._write(self.reply_to(line).encode("ascii") + b"\n")

    def _write(self, data: bytes) -> None:
        try:
            os.write(self._master, data)
        except OSError:
            self._stop.set()
