"""The simulated dermatoscope's USB cable: the fault injector at the physical boundary.

A :class:`SimulatedCable` sits between an OpenCV capture and its user. Unplugged, the capture
fails exactly like OpenCV with a vanished V4L2 device: ``read()`` returns ``(False, None)``,
``grab()`` False, ``set()`` False, and a capture opened while unplugged is not opened.
"""

from __future__ import annotations

import numpy as np

from skinstation.camera.opencv_camera import VideoCaptureLike


class SimulatedCable:
    """The simulated dermatoscope's USB cable: plug, unplug, or unplug after N frames.

    Args:
        unplug_after_frames: Deliver this many frames (reads or grabs), then unplug.
    """

    def __init__(self, unplug_after_frames: int | None = None) -> None:
        self.plugged = True
        self._remaining = unplug_after_frames

    def unplug(self) -> None:
        """Pull the cable now."""
        self.plugged = False

    def plug_in(self, unplug_after_frames: int | None = None) -> None:
        """Reconnect (optionally arming another unplug after N frames)."""
        self.plugged = True
        self._remaining = unplug_after_frames

    def take_frame(self) -> bool:
        """Account for one delivered frame; False if the device is (now) unplugged."""
        if not self.plugged:
            return False
        if self._remaining is not None:
            if self._remaining <= 0:
                self.plugged = False
                return False
            self._remaining -= 1
        return True

    def wrap(self, capture: VideoCaptureLike) -> VideoCaptureLike:
        """Put this cable between a capture and its user."""
        return _CabledCapture(capture, self)


class _CabledCapture:
    """A capture behind a :class:`SimulatedCable`; fails the way cv2 fails on a lost device."""

    def __init__(self, capture: VideoCaptureLike, cable: SimulatedCable) -> None:
        self._capture = capture
        self._cable = cable
        self._opened_while_plugged = cable.plugged

    def isOpened(self) -> bool:
        return self._opened_while_plugged and self._capture.isOpened()

    def read(self) -> tuple[bool, np.ndarray | None]:
        if not self._cable.take_frame():
            return False, None
        return self._capture.read()

    def grab(self) -> bool:
        return self._cable.take_frame() and self._capture.grab()

    def get(self, prop: int) -> float:
        return self._capture.get(prop)

    def set(self, prop: int, value: float) -> bool:
        return self._cable.plugged and self._capture.set(prop, value)

    def release(self) -> None:
        self._capture.release()

    def getBackendName(self) -> str:
        return self._capture.getBackendName()
