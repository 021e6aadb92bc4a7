"""Physical USB/UVC cameras and dermatoscopes through ``cv2.VideoCapture``.

A device is named by its index (``0``) or its path (``/dev/video2``). On Linux both go through
the V4L2 backend. After opening, the requested resolution and exposure are set and then read
back, so :attr:`CameraFrameSource.properties` reports what the device actually accepted (many
UVC dermatoscopes only offer a few fixed modes and ignore manual exposure).

When a device is unplugged, OpenCV's ``read()`` returns ``(False, None)`` (after the V4L2
backend's own select timeout); the source turns that into :class:`CameraDisconnectedError`,
naming the device, and closes itself so that :meth:`~FrameSource.open` can be called again once
the device is back.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Protocol

import cv2
import numpy as np

from skinstation.camera.frames import (
    CameraDisconnectedError,
    CameraUnavailableError,
    FrameSource,
    SourceKind,
    SourceProperties,
    stopped_delivering,
)

# V4L2 exposure modes as OpenCV's V4L2 backend passes them through to V4L2_CID_EXPOSURE_AUTO;
# other backends (DirectShow, MSMF) use OpenCV's legacy 0.25 (manual) / 0.75 (auto) convention.
_V4L2_MANUAL_EXPOSURE, _V4L2_AUTO_EXPOSURE = 1.0, 3.0
_LEGACY_MANUAL_EXPOSURE, _LEGACY_AUTO_EXPOSURE = 0.25, 0.75


class VideoCaptureLike(Protocol):
    """The part of ``cv2.VideoCapture`` the frame sources use (also met by test fakes)."""

    def isOpened(self) -> bool:
        """Whether the capture is open."""
        ...

    def read(self) -> tuple[bool, np.ndarray | None]:
        """Grab and decode the next frame."""
        ...

    def grab(self) -> bool:
        """Grab the next frame without decoding it."""
        ...

    def get(self, prop: int) -> float:
        """Read a property."""
        ...

    def set(self, prop: int, value: float) -> bool:
        """Write a property; False if refused."""
        ...

    def release(self) -> None:
        """Close the capture."""
        ...

    def getBackendName(self) -> str:
        """Backend name, e.g. V4L2."""
        ...


CaptureOpener = Callable[[], VideoCaptureLike]


def device_id_for(device: int | str) -> str:
    """Canonical identifier of a camera: ``/dev/videoN`` on Linux for index N, else as given."""
    if isinstance(device, int) or (isinstance(device, str) and device.isdigit()):
        index = int(device)
        return f"/dev/video{index}" if sys.platform.startswith("linux") else f"camera {index}"
    return str(device)


def bgr_to_rgb(image: np.ndarray, device_id: str) -> np.ndarray:
    """Convert an OpenCV frame (BGR, BGRA or grey) to a read-only RGB uint8 array.

    Raises:
        CameraDisconnectedError: If the frame is empty or has an unexpected layout (a device
            that delivers broken buffers is treated like one that vanished).
    """
    if image.size == 0 or image.dtype != np.uint8:
        raise CameraDisconnectedError(
            f"{device_id} delivered an unusable frame ({image.shape} {image.dtype})"
        )
    if image.ndim == 2:
        rgb = cv2.cvtColor(image, cv2.COLOR_GRAY2RGB)
    elif image.ndim == 3 and image.shape[2] == 4:
        rgb = cv2.cvtColor(image, cv2.COLOR_BGRA2RGB)
    elif image.ndim == 3 and image.shape[2] == 3:
        rgb = cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
    else:
        raise CameraDisconnectedError(f"{device_id} delivered a frame of shape {image.shape}")
    rgb.setflags(write=False)
    return rgb


class CameraFrameSource(FrameSource):
    """A physical camera or dermatoscope opened with ``cv2.VideoCapture``.

    Opening applies the requested settings and reads one frame, which proves the device
    streams (a busy device often opens but never delivers) and gives the true resolution.

    Args:
        device: Camera index or device path (``/dev/video0``).
        width: Requested frame width; None keeps the device default.
        height: Requested frame height; None keeps the device default.
        exposure: Requested manual exposure in the driver's units; None = automatic.
        buffer_size: Frames the driver may queue (1 keeps the preview fresh where supported).
        opener: Builds the capture; defaults to ``cv2.VideoCapture`` on the right backend.
        selection_reason: Why this source was chosen (see :class:`FrameSource`).
    """

    kind: SourceKind = "camera"

    def __init__(
        self,
        device: int | str,
        width: int | None = None,
        height: int | None = None,
        exposure: float | None = None,
        buffer_size: int | None = 1,
        opener: CaptureOpener | None = None,
        selection_reason: str = "",
    ) -> None:
        super().__init__(device_id_for(device), selection_reason)
        self.device = int(device) if isinstance(device, str) and device.isdigit() else device
        self.requested_width = width
        self.requested_height = height
        self.requested_exposure = exposure
        self.buffer_size = buffer_size
        self._opener = opener or self._default_opener
        self._capture: VideoCaptureLike | None = None

    def _default_opener(self) -> VideoCaptureLike:
        device = self.device
        is_v4l2 = isinstance(device, int) or str(device).startswith("/dev/video")
        if is_v4l2 and sys.platform.startswith("linux"):
            return cv2.VideoCapture(device, cv2.CAP_V4L2)
        return cv2.VideoCapture(device)

    def _open(self) -> SourceProperties:
        capture = self._opener()
        if not capture.isOpened():
            capture.release()
            raise CameraUnavailableError(
                f"cannot open camera {self.device_id}: not connected, busy or not a camera"
            )
        self._capture = capture
        try:
            return self._configure(capture)
        except Exception:
            self._close()
            raise

    def _configure(self, capture: VideoCaptureLike) -> SourceProperties:
        """Apply the requested settings and read back what the device accepted."""
        notes: list[str] = []
        backend = capture.getBackendName()
        if self.buffer_size is not None:
            capture.set(cv2.CAP_PROP_BUFFERSIZE, float(self.buffer_size))
        if self.requested_width is not None and self.requested_height is not None:
            capture.set(cv2.CAP_PROP_FRAME_WIDTH, float(self.requested_width))
            capture.set(cv2.CAP_PROP_FRAME_HEIGHT, float(self.requested_height))
        exposure = self._configure_exposure(capture, backend, notes)
        # The first frame tells the truth about the resolution even where get() does not.
        ok, first = capture.read()
        if not ok or first is None:
            raise CameraUnavailableError(f"camera {self.device_id} opened but sent no frame")
        height, width = first.shape[:2]
        if self.requested_width is not None and (width, height) != (
            self.requested_width,
            self.requested_height,
        ):
            notes.append(
                f"requested {self.requested_width}x{self.requested_height}, "
                f"device delivers {width}x{height}"
            )
        return SourceProperties(
            width=int(width),
            height=int(height),
            fps=max(0.0, float(capture.get(cv2.CAP_PROP_FPS))),
            exposure=exposure,
            requested_width=self.requested_width,
            requested_height=self.requested_height,
            requested_exposure=self.requested_exposure,
            backend=backend,
            notes=tuple(notes),
        )

    def _configure_exposure(
        self, capture: VideoCaptureLike, backend: str, notes: list[str]
    ) -> float | None:
        """Switch to manual exposure and set it, or back to automatic; return the read-back."""
        manual, auto = (
            (_V4L2_MANUAL_EXPOSURE, _V4L2_AUTO_EXPOSURE)
            if backend == "V4L2"
            else (_LEGACY_MANUAL_EXPOSURE, _LEGACY_AUTO_EXPOSURE)
        )
        if self.requested_exposure is None:
            capture.set(cv2.CAP_PROP_AUTO_EXPOSURE, auto)
            return None
        accepted = capture.set(cv2.CAP_PROP_AUTO_EXPOSURE, manual)
        accepted = capture.set(cv2.CAP_PROP_EXPOSURE, float(self.requested_exposure)) and accepted
        actual = float(capture.get(cv2.CAP_PROP_EXPOSURE))
        if not accepted:
            notes.append(f"device refused manual exposure {self.requested_exposure:g}")
            return None
        if actual != float(self.requested_exposure):
            notes.append(f"requested exposure {self.requested_exposure:g}, device set {actual:g}")
        return actual

    def _read_rgb(self) -> tuple[np.ndarray, str]:
        if self._capture is None:  # pragma: no cover - guarded by FrameSource.read
            raise stopped_delivering(f"camera {self.device_id}")
        ok, image = self._capture.read()
        if not ok or image is None:
            raise stopped_delivering(f"camera {self.device_id}")
        return bgr_to_rgb(image, self.device_id), ""

    def _discard(self, count: int) -> None:
        """Drop ``count`` buffered frames with ``grab()`` (no decoding)."""
        for _ in range(count):
            if self._capture is None or not self._capture.grab():
                raise stopped_delivering(f"camera {self.device_id}")

    def _close(self) -> None:
        if self._capture is not None:
            self._capture.release()
            self._capture = None
