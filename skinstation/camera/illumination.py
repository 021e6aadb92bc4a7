r"""Illumination: named light bands, a serial LED-controller driver and a manual fallback.

Bands
    ``white``, ``cross_polarised``, ``uv_365``, ``violet_405``, ``amber_590``, ``red_660`` and
    ``nir_850`` (see :data:`BANDS`); a station uses the subset in ``CameraSettings.bands``.

LED controller line protocol (version 1)
    Serial link, 115200 baud 8N1 by default, no flow control. ASCII lines ending in ``\n``
    (the controller also accepts ``\r\n``), at most 64 bytes. Every command gets exactly one
    reply line::

        PING           ->  PONG
        BANDS          ->  BANDS <name> <name> ...     bands the controller can light
        BAND <name>    ->  OK BAND <name>              that band on, every other LED off
        OFF            ->  OK OFF                      every LED off
        STATUS         ->  STATUS <name>  |  STATUS OFF
        (on failure)   ->  ERR <code> <text>

    Error codes: ``1`` unknown command, ``2`` unknown band, ``3`` hardware fault (the text
    says which, e.g. ``ERR 3 LED over temperature``), ``4`` line too long. The controller
    powers up with every LED off.

    Host rules (this driver): on open it sends ``PING`` (expects ``PONG``) and ``BANDS`` and
    checks every configured band is present. Before each command it discards unread input, so
    a late reply to a timed-out command is never taken for the next command's. A reply must
    arrive, complete with its ``\n``, within the timeout (1 s by default), else
    :class:`IlluminatorError`; so does an ``ERR`` reply or any reply other than the expected
    one. Closing the driver switches the LEDs off.

:class:`ManualIlluminator` serves stations without a controller: the operator sets the light
by hand (the UI is told through a callback) and the band is still recorded with each frame.
"""

from __future__ import annotations

import errno
import os
import threading
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Self

import serial

from skinstation.core.i18n import KeyedError, text

try:
    from termios import error as _TermiosError
except ImportError:  # pragma: no cover - Windows has no termios
    _TermiosError = OSError

# What pyserial lets escape when a port vanishes: its own exception, OS errors, and (on POSIX,
# from tcflush on a hung-up pty or USB-serial adapter) termios.error.
_PORT_ERRORS = (serial.SerialException, OSError, _TermiosError)


class IlluminatorError(KeyedError, RuntimeError):
    """The light could not be set; the message names the controller and the reason.

    Raised with a text key (``error.light.*``; see :class:`~skinstation.core.i18n.KeyedError`).
    """


def _describe(exc: BaseException) -> str:
    """The human part of an OS-style error (``(5, 'Input/output error')`` → its text)."""
    if len(exc.args) >= 2 and isinstance(exc.args[0], int):
        return str(exc.args[1])
    return str(exc)


@dataclass(frozen=True)
class Band:
    """One illumination band.

    Attributes:
        name: Identifier used in settings, the protocol and stored captures.
        display_name: Name shown to operators.
        wavelength_nm: Peak wavelength in nanometres; None for broadband white light.
    """

    name: str
    display_name: str
    wavelength_nm: int | None


BANDS: dict[str, Band] = {
    band.name: band
    for band in (
        Band("white", "White light", None),
        Band("cross_polarised", "Cross-polarised white light", None),
        Band("uv_365", "Ultraviolet 365 nm", 365),
        Band("violet_405", "Violet 405 nm", 405),
        Band("amber_590", "Amber 590 nm", 590),
        Band("red_660", "Red 660 nm", 660),
        Band("nir_850", "Near-infrared 850 nm", 850),
    )
}
"""Every band SkinStation knows, by name."""


def resolve_bands(names: Sequence[str]) -> tuple[Band, ...]:
    """Look up band names (e.g. ``CameraSettings.bands``).

    Raises:
        ValueError: On an unknown or repeated name.
    """
    unknown = [name for name in names if name not in BANDS]
    if unknown:
        raise ValueError(f"unknown band(s) {', '.join(unknown)}; known: {', '.join(BANDS)}")
    if len(set(names)) != len(names):
        raise ValueError(f"band list repeats a band: {', '.join(names)}")
    return tuple(BANDS[name] for name in names)


class Illuminator(ABC):
    """Switches the station's light between bands.

    Attributes:
        bands: The bands this station offers, in capture order.
    """

    manual: bool = False
    """True if a person, not software, sets the light."""

    def __init__(self, bands: Sequence[str]) -> None:
        self.bands = resolve_bands(bands)
        self.current_band: Band | None = None
        """The band last confirmed lit; None when off or after a failed switch."""

    @property
    @abstractmethod
    def description_text(self) -> tuple[str, dict[str, str]]:
        """The text key and values naming the illuminator (the UI shows it translated)."""

    @property
    def description(self) -> str:
        """Short English text naming the illuminator (logs and errors)."""
        key, values = self.description_text
        return text(key, "en").format(**values)

    def open(self) -> None:  # noqa: B027 - optional hook
        """Connect to the controller (nothing to do for a manual light)."""

    def close(self) -> None:  # noqa: B027 - optional hook
        """Disconnect (switching the light off first where possible)."""

    def band(self, name: str) -> Band:
        """Return the configured band called ``name``.

        Raises:
            ValueError: If this station does not offer that band.
        """
        for band in self.bands:
            if band.name == name:
                return band
        offered = ", ".join(b.name for b in self.bands)
        raise ValueError(f"band {name!r} is not configured on this station (offered: {offered})")

    def set_band(self, name: str) -> Band:
        """Light band ``name`` (every other band off) and return it.

        Raises:
            ValueError: If the band is not configured.
            IlluminatorError: If the controller does not confirm.
        """
        band = self.band(name)
        try:
            self._switch(band)
        except IlluminatorError:
            self.current_band = None  # unknown: the controller may have switched off
            raise
        self.current_band = band
        return band

    def off(self) -> None:
        """Switch every band off.

        Raises:
            IlluminatorError: If the controller does not confirm.
        """
        self._switch(None)
        self.current_band = None

    @abstractmethod
    def _switch(self, band: Band | None) -> None:
        """Make ``band`` the only one lit (None: all off)."""

    def __enter__(self) -> Self:
        self.open()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()


class ManualIlluminator(Illuminator):
    """No controller: the operator sets the light by hand; the band is still recorded.

    Args:
        bands: Bands the station offers.
        on_change: Called with the band to set (None = lights off) before each capture, e.g.
            by the UI to show "Set the light to Ultraviolet 365 nm" and wait for the operator.
    """

    manual = True

    def __init__(
        self, bands: Sequence[str], on_change: Callable[[Band | None], None] | None = None
    ) -> None:
        super().__init__(bands)
        self.on_change = on_change

    @property
    def description_text(self) -> tuple[str, dict[str, str]]:
        """See :attr:`Illuminator.description_text`."""
        return "light.manual", {}

    def _switch(self, band: Band | None) -> None:
        if self.on_change is not None:
            self.on_change(band)


class SerialIlluminator(Illuminator):
    """Driver for an LED controller speaking the line protocol in this module's docstring.

    Args:
        port: Serial port, e.g. ``/dev/ttyACM0``.
        bands: Bands the station uses (checked against the controller's ``BANDS``).
        baudrate: Link speed.
        timeout_seconds: Time allowed for each reply.
        on_close: Called after the port is closed (e.g. to stop a simulated controller).
    """

    MAX_REPLY_BYTES = 128

    def __init__(
        self,
        port: str,
        bands: Sequence[str],
        baudrate: int = 115200,
        timeout_seconds: float = 1.0,
        on_close: Callable[[], None] | None = None,
    ) -> None:
        super().__init__(bands)
        self.port = port
        self.baudrate = baudrate
        self.timeout_seconds = timeout_seconds
        self.on_close = on_close
        self.controller_bands: tuple[str, ...] = ()
        self._serial: serial.Serial | None = None
        self._lock = threading.Lock()

    @property
    def description_text(self) -> tuple[str, dict[str, str]]:
        """See :attr:`Illuminator.description_text`."""
        return "light.serial", {"port": self.port}

    def open(self) -> None:
        """Open the port, check the controller answers and has every configured band.

        Raises:
            IlluminatorError: If the port is missing or the controller does not answer properly.
        """
        if self._serial is not None:
            return
        try:
            self._serial = serial.Serial(
                self.port,
                self.baudrate,
                timeout=self.timeout_seconds,
                write_timeout=self.timeout_seconds,
            )
        except (serial.SerialException, OSError) as exc:
            code = exc.args[0] if exc.args and isinstance(exc.args[0], int) else None
            reason = os.strerror(code) if code is not None else _describe(exc)
            if code == errno.ENOENT:
                raise IlluminatorError("error.light.no_port", port=self.port) from exc
            raise IlluminatorError("error.light.open", port=self.port, reason=reason) from exc
        try:
            self._expect("PING", "PONG")
            reply = self.command("BANDS")
            words = reply.split()
            if not words or words[0] != "BANDS":
                raise self._unexpected("BANDS", reply)
            self.controller_bands = tuple(words[1:])
            missing = [b.name for b in self.bands if b.name not in self.controller_bands]
            if missing:
                offered = ", ".join(self.controller_bands)
                raise IlluminatorError(
                    "error.light.missing_bands" if offered else "error.light.no_bands",
                    port=self.port, missing=", ".join(missing), offered=offered)
        except IlluminatorError:
            self._close_port()
            raise

    def close(self) -> None:
        """Switch the LEDs off (best effort) and close the port."""
        if self._serial is None:
            return
        try:
            self.off()
        except IlluminatorError:
            pass  # closing anyway; the controller powers its LEDs off when it loses the host
        finally:
            self._close_port()

    def status(self) -> str | None:
        """Ask the controller which band is lit (None: all off)."""
        reply = self.command("STATUS")
        words = reply.split()
        if len(words) != 2 or words[0] != "STATUS":
            raise self._unexpected("STATUS", reply)
        return None if words[1] == "OFF" else words[1]

    def command(self, line: str) -> str:
        """Send one command line and return its reply line (without the newline).

        Raises:
            IlluminatorError: If the port is closed or fails, the reply is late, incomplete or
                not text, or the controller answers ``ERR``.
        """
        with self._lock:
            port = self._serial
            if port is None:
                raise IlluminatorError("error.light.not_open", port=self.port)
            try:
                port.reset_input_buffer()
                port.write(line.encode("ascii") + b"\n")
                port.flush()
                raw = port.read_until(b"\n", self.MAX_REPLY_BYTES)
            except _PORT_ERRORS as exc:
                self._close_port()
                raise IlluminatorError("error.light.lost", port=self.port,
                                       reason=_describe(exc)) from exc
        if not raw.endswith(b"\n"):
            if not raw:
                raise IlluminatorError("error.light.timeout", port=self.port,
                                       command=repr(line), seconds=f"{self.timeout_seconds:g}")
            raise self._unexpected(line, raw)
        try:
            reply = raw.decode("ascii").rstrip("\r\n")
        except UnicodeDecodeError:
            raise self._unexpected(line, raw) from None
        if reply.startswith("ERR"):
            parts = reply.split(" ", 2)
            if len(parts) < 2 or not parts[1].isdigit():
                raise self._unexpected(line, reply)
            text = parts[2] if len(parts) > 2 else ""
            raise IlluminatorError("error.light.refused", port=self.port, command=repr(line),
                                   code=parts[1], reason=text)
        return reply

    def _switch(self, band: Band | None) -> None:
        if band is None:
            self._expect("OFF", "OK OFF")
        else:
            self._expect(f"BAND {band.name}", f"OK BAND {band.name}")

    def _expect(self, line: str, expected: str) -> None:
        reply = self.command(line)
        if reply != expected:
            raise self._unexpected(line, reply)

    def _unexpected(self, line: str, reply: str | bytes) -> IlluminatorError:
        return IlluminatorError("error.light.unexpected", port=self.port, command=repr(line),
                                reply=repr(reply))

    def _close_port(self) -> None:
        port, self._serial = self._serial, None
        if port is not None:
            port.close()
            if self.on_close is not None:
                self.on_close()
