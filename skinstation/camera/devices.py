"""Listing the cameras and dermatoscopes attached to the station, without hanging.

On Linux every ``/dev/video*`` node is asked for its capabilities with the ``VIDIOC_QUERYCAP``
ioctl on a non-blocking descriptor: this returns at once, never starts streaming, and tells
capture nodes apart from the metadata nodes UVC devices also create. Elsewhere, indices
``0..max_index`` are tried with ``cv2.VideoCapture``, each in a worker thread with a timeout,
so a driver that blocks cannot freeze the station (a timed-out probe is reported as such).
"""

from __future__ import annotations

import errno
import fcntl
import os
import struct
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import cv2

# struct v4l2_capability: driver[16], card[32], bus_info[32], version, capabilities,
# device_caps, reserved[3] (all u32) = 104 bytes; VIDIOC_QUERYCAP = _IOR('V', 0, that struct).
_V4L2_CAPABILITY = struct.Struct("16s32s32sIII3I")
VIDIOC_QUERYCAP = (2 << 30) | (_V4L2_CAPABILITY.size << 16) | (ord("V") << 8) | 0
V4L2_CAP_VIDEO_CAPTURE = 0x00000001
V4L2_CAP_DEVICE_CAPS = 0x80000000


@dataclass(frozen=True)
class CameraDevice:
    """One camera-like device found on the station.

    Attributes:
        device: What to put in ``CameraSettings.source``: a ``/dev/video*`` path or an index.
        index: The OpenCV index (N of ``/dev/videoN``), if known.
        name: The driver's product name (e.g. ``Dino-Lite Edge``), or ``""``.
        usable: True if the device is a video-capture device that answered the probe.
        status: ``ok`` or why it is not usable (``permission denied``, ``not a capture
            device``, ``probe timed out``, ...).
    """

    device: str
    index: int | None
    name: str
    usable: bool
    status: str


def query_v4l2(path: Path) -> CameraDevice:
    """Ask one device node for its V4L2 capabilities (non-blocking, never streams)."""
    index = int(path.name[5:]) if path.name[5:].isdigit() else None
    try:
        descriptor = os.open(path, os.O_RDWR | os.O_NONBLOCK)
    except OSError as exc:
        status = "permission denied" if exc.errno == errno.EACCES else (exc.strerror or str(exc))
        return CameraDevice(str(path), index, "", False, status.lower())
    try:
        buffer = bytearray(_V4L2_CAPABILITY.size)
        fcntl.ioctl(descriptor, VIDIOC_QUERYCAP, buffer)
    except OSError:
        return CameraDevice(str(path), index, "", False, "not a V4L2 device")
    finally:
        os.close(descriptor)
    _driver, card, _bus, _version, capabilities, device_caps, *_ = _V4L2_CAPABILITY.unpack(buffer)
    name = card.split(b"\0", 1)[0].decode("utf-8", "replace")
    caps = device_caps if capabilities & V4L2_CAP_DEVICE_CAPS else capabilities
    if not caps & V4L2_CAP_VIDEO_CAPTURE:
        return CameraDevice(str(path), index, name, False, "not a capture device")
    return CameraDevice(str(path), index, name, True, "ok")


def probe_index(index: int) -> bool:
    """Open camera ``index`` with OpenCV and report whether it opened (may block on bad drivers)."""
    capture = cv2.VideoCapture(index)
    try:
        return bool(capture.isOpened())
    finally:
        capture.release()


def run_with_timeout(function: Callable[[], bool], timeout_seconds: float) -> bool | None:
    """Run ``function`` in a daemon thread; its result, or None if it did not finish in time."""
    result: list[bool] = []
    worker = threading.Thread(target=lambda: result.append(function()), daemon=True)
    worker.start()
    worker.join(timeout_seconds)
    return result[0] if result else None


def list_cameras(
    dev_dir: Path = Path("/dev"),
    method: Literal["auto", "v4l2", "opencv"] = "auto",
    max_index: int = 4,
    timeout_seconds: float = 2.0,
    probe: Callable[[int], bool] = probe_index,
) -> list[CameraDevice]:
    """List camera-like devices, usable ones first.

    Args:
        dev_dir: Where ``video*`` nodes live (Linux).
        method: ``v4l2`` queries ``video*`` nodes, ``opencv`` probes indices; ``auto`` picks
            ``v4l2`` on Linux.
        max_index: Highest OpenCV index to probe with the ``opencv`` method.
        timeout_seconds: Time allowed for each index probe.
        probe: Opens an index and says whether it works.

    Returns:
        The devices found (with ``v4l2``, one entry per ``video*`` node).
    """
    if method == "auto":
        method = "v4l2" if sys.platform.startswith("linux") else "opencv"
    devices: list[CameraDevice] = []
    if method == "v4l2":
        nodes = sorted(dev_dir.glob("video*"), key=lambda p: (len(p.name), p.name))
        devices = [query_v4l2(node) for node in nodes]
    else:
        for index in range(max_index + 1):
            opened = run_with_timeout(lambda index=index: probe(index), timeout_seconds)
            if opened is None:
                devices.append(CameraDevice(str(index), index, "", False, "probe timed out"))
            elif opened:
                devices.append(CameraDevice(str(index), index, "", True, "ok"))
    return sorted(devices, key=lambda device: not device.usable)
