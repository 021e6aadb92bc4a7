"""Frames and the :class:`FrameSource` interface every camera, simulator and test source obeys.

A frame source is opened, read frame by frame and closed; it is also a context manager::

    with open_frame_source(settings.camera) as source:
        frame = source.read()          # a complete RGB frame, or an exception

Frames are immutable: their pixel array is read-only, so nothing downstream can half-modify
a capture that is about to be stored.
"""

from __future__ import annotations

import threading
import time
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from types import TracebackType
from typing import Literal, Self

import numpy as np

SourceKind = Literal["camera", "simulator", "synthetic"]

SYNTHETIC_LABEL = "SIMULATED — NOT A PATIENT IMAGE"
"""Text drawn on every synthetic frame."""


class CameraError(RuntimeError):
    """Base class of frame-source errors; the message names the device."""


class CameraUnavailableError(CameraError):
    """A device could not be opened (missing, busy, unplugged or not a camera)."""


class CameraDisconnectedError(CameraError):
    """An open device stopped delivering frames (typically unplugged).

    The source is closed when this is raised; call :meth:`FrameSource.open` again once the
    device is back.
    """


def stopped_delivering(device_id: str) -> CameraDisconnectedError:
    """The error raised when an open device stops delivering frames."""
    return CameraDisconnectedError(
        f"{device_id} stopped delivering frames (unplugged?); reconnect it and open it again"
    )


@dataclass(frozen=True, eq=False)
class Frame:
    """One RGB frame as delivered by a :class:`FrameSource`.

    Attributes:
        pixels: (H, W, 3) uint8 RGB array, read-only.
        timestamp: Wall-clock time the frame was read (seconds since the epoch).
        device_id: The source's device identifier, e.g. ``/dev/video0`` or ``simulator:<path>``.
        sequence: 1-based number of the frame since the source was opened.
        source_kind: ``camera``, ``simulator`` (replayed real images) or ``synthetic`` (drawn).
        label: What the frame shows when known, e.g. the replayed file's name; else ``""``.
    """

    pixels: np.ndarray
    timestamp: float
    device_id: str
    sequence: int
    source_kind: SourceKind
    label: str = ""

    def __post_init__(self) -> None:
        pixels = self.pixels
        if pixels.ndim != 3 or pixels.shape[2] != 3 or pixels.dtype != np.uint8:
            raise ValueError(f"frame must be (H, W, 3) uint8, got {pixels.shape} {pixels.dtype}")
        if pixels.shape[0] == 0 or pixels.shape[1] == 0:
            raise ValueError(f"frame from {self.device_id} is empty")
        if pixels.flags.writeable:
            pixels = np.array(pixels, copy=True, order="C")
            pixels.setflags(write=False)
            object.__setattr__(self, "pixels", pixels)

    @property
    def width(self) -> int:
        """Frame width in pixels."""
        return int(self.pixels.shape[1])

    @property
    def height(self) -> int:
        """Frame height in pixels."""
        return int(self.pixels.shape[0])

    @property
    def synthetic(self) -> bool:
        """True for drawn frames that show no real skin (labelled on the image)."""
        return self.source_kind == "synthetic"

    @property
    def simulated(self) -> bool:
        """True unless the frame came from a physical camera: never a new patient image."""
        return self.source_kind != "camera"


@dataclass(frozen=True)
class SourceProperties:
    """What a source was asked for and what it actually delivers.

    Attributes:
        width: Frame width actually delivered.
        height: Frame height actually delivered.
        fps: Frame rate reported by the device or simulator (0 if unknown).
        exposure: Exposure value read back from the device; None if automatic or unsupported.
        requested_width: Width asked for (None if nothing was asked).
        requested_height: Height asked for (None if nothing was asked).
        requested_exposure: Exposure asked for (None = automatic).
        backend: OpenCV backend name (``V4L2``, ``FFMPEG``, ``CV_IMAGES``) or ``synthetic``.
        notes: Human-readable remarks, e.g. a setting the device refused.
    """

    width: int
    height: int
    fps: float = 0.0
    exposure: float | None = None
    requested_width: int | None = None
    requested_height: int | None = None
    requested_exposure: float | None = None
    backend: str = ""
    notes: tuple[str, ...] = field(default_factory=tuple)


class FrameSource(ABC):
    """Something that delivers RGB frames: a camera, a simulated dermatoscope or synthetic frames.

    Subclasses implement :meth:`_open`, :meth:`_read_rgb` and :meth:`_close` (and may replace
    :meth:`_discard`); this class keeps the open/closed state, numbers frames, wraps them in
    :class:`Frame` and serialises calls, so a preview thread and a capture cannot interleave
    inside one OpenCV call (OpenCV captures are not thread-safe).

    Attributes:
        device_id: Identifier used in frames and error messages.
        kind: ``camera``, ``simulator`` or ``synthetic``.
        selection_reason: Why :func:`~skinstation.camera.factory.open_frame_source` chose this
            source (empty when built directly).
    """

    kind: SourceKind

    def __init__(self, device_id: str, selection_reason: str = "") -> None:
        self.device_id = device_id
        self.selection_reason = selection_reason
        self._open_flag = False
        self._sequence = 0
        self._properties: SourceProperties | None = None
        self._lock = threading.RLock()

    @property
    def is_open(self) -> bool:
        """Whether :meth:`read` can be called."""
        return self._open_flag

    @property
    def synthetic(self) -> bool:
        """True if the source draws frames rather than showing real skin."""
        return self.kind == "synthetic"

    @property
    def properties(self) -> SourceProperties:
        """Resolution, frame rate and exposure the source actually delivers.

        Raises:
            CameraError: If the source is not open.
        """
        if not self._open_flag or self._properties is None:
            raise CameraError(f"{self.device_id} is not open")
        return self._properties

    def open(self) -> None:
        """Open the device (no-op if already open).

        Raises:
            CameraUnavailableError: If the device cannot be opened.
        """
        with self._lock:
            if self._open_flag:
                return
            self._properties = self._open()
            self._sequence = 0
            self._open_flag = True

    def read(self) -> Frame:
        """Return the next complete frame.

        Raises:
            CameraError: If the source is not open.
            CameraDisconnectedError: If the device stopped delivering frames; the source is
                closed and may be reopened.
        """
        with self._lock:
            if not self._open_flag:
                raise CameraError(f"{self.device_id} is not open")
            try:
                rgb, label = self._read_rgb()
            except CameraDisconnectedError:
                self.close()
                raise
            self._sequence += 1
            return Frame(rgb, time.time(), self.device_id, self._sequence, self.kind, label)

    def discard(self, count: int) -> None:
        """Drop ``count`` frames: stale ones the driver buffered before the scene changed.

        Raises:
            CameraError: If the source is not open.
            CameraDisconnectedError: If the device stops delivering frames meanwhile; the
                source is closed and may be reopened.
        """
        with self._lock:
            if not self._open_flag:
                raise CameraError(f"{self.device_id} is not open")
            try:
                self._discard(count)
            except CameraDisconnectedError:
                self.close()
                raise

    def close(self) -> None:
        """Release the device (safe to call twice)."""
        with self._lock:
            if self._open_flag:
                self._open_flag = False
                self._close()

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

    def __repr__(self) -> str:
        state = "open" if self._open_flag else "closed"
        return f"<{type(self).__name__} {self.device_id} {state}>"

    @abstractmethod
    def _open(self) -> SourceProperties:
        """Open the device and return what it delivers."""

    @abstractmethod
    def _read_rgb(self) -> tuple[np.ndarray, str]:
        """Return the next frame as an (H, W, 3) uint8 RGB array and its label."""

    @abstractmethod
    def _close(self) -> None:
        """Release the device."""

    def _discard(self, count: int) -> None:
        """Drop ``count`` frames; by default by reading and dropping them."""
        for _ in range(count):
            self._read_rgb()
