"""Choosing and opening the station's frame source and illuminator from ``CameraSettings``.

``CameraSettings.source``:

* ``auto``: the first usable camera; else the simulator if ``simulator_folder`` is set; else
  labelled synthetic frames. A camera that is listed but fails to open is skipped.
* ``simulator``: replay ``simulator_folder`` (synthetic frames if it is empty).
* ``synthetic``: labelled synthetic frames.
* an index (``0``) or a device path (``/dev/video2``): that camera, or an error; an existing
  folder or video file: replay it.

The simulated dermatoscope holds one lesion (with slight hand motion and focus drift) until
it is told to move to the next (``next_lesion``), like a scope held on a patient's skin.

The chosen source says what it is (``source.kind``) and why it was chosen
(``source.selection_reason``, also logged).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

from skinstation.camera.devices import CameraDevice, list_cameras
from skinstation.camera.frames import CameraUnavailableError, FrameSource
from skinstation.camera.illumination import Illuminator, ManualIlluminator, SerialIlluminator
from skinstation.camera.led_simulator import LedControllerSimulator
from skinstation.camera.opencv_camera import CameraFrameSource
from skinstation.camera.simulator import SimulatedDermatoscope
from skinstation.camera.synthetic import SyntheticFrameSource
from skinstation.settings import CameraSettings

log = logging.getLogger(__name__)


def open_frame_source(
    camera: CameraSettings,
    list_devices: Callable[[], list[CameraDevice]] = list_cameras,
) -> FrameSource:
    """Pick a frame source per ``camera.source``, open it and return it.

    Args:
        camera: The camera settings.
        list_devices: Lists attached cameras (for ``auto``).

    Returns:
        An open source; ``kind`` and ``selection_reason`` say which one and why.

    Raises:
        CameraUnavailableError: If an explicitly named camera or media cannot be opened.
    """
    source = _choose(camera, list_devices)
    source.open()
    log.info("frame source: %s (%s)", source.device_id, source.selection_reason)
    return source


def _choose(camera: CameraSettings, list_devices: Callable[[], list[CameraDevice]]) -> FrameSource:
    choice = camera.source.strip()
    if choice == "auto":
        for device in list_devices():
            if not device.usable:
                continue
            found = f"auto: found camera {device.name or device.device}"
            source = _camera(camera, device.device, found)
            try:
                source.open()
            except CameraUnavailableError as exc:
                log.warning("skipping camera %s: %s", device.device, exc)
                continue
            return source
        return _media_or_synthetic(camera, "auto: no camera found")
    if choice == "simulator":
        return _media_or_synthetic(camera, "simulator requested")
    if choice == "synthetic":
        return _synthetic(camera, "synthetic frames requested")
    if choice.isdigit() or choice.startswith("/dev/"):
        return _camera(camera, choice, f"camera {choice} requested")
    path = Path(choice).expanduser()
    if path.is_dir() or path.is_file():
        return _simulator(camera, path, f"replaying {path} as requested")
    raise CameraUnavailableError(
        f"camera source {choice!r} is neither auto, simulator, synthetic, a camera index, "
        "a device path nor an existing folder or video"
    )


def _camera(camera: CameraSettings, device: str, reason: str) -> CameraFrameSource:
    return CameraFrameSource(
        device, camera.width, camera.height, camera.exposure, selection_reason=reason
    )


def _media_or_synthetic(camera: CameraSettings, why: str) -> FrameSource:
    if camera.simulator_folder:
        folder = Path(camera.simulator_folder).expanduser()
        return _simulator(camera, folder, f"{why}: replaying {folder} (simulated dermatoscope)")
    return _synthetic(camera, f"{why} and no simulator_folder set: synthetic frames")


def _simulator(camera: CameraSettings, media: Path, reason: str) -> SimulatedDermatoscope:
    return SimulatedDermatoscope(
        media,
        fps=camera.simulator_fps,
        size=(camera.width, camera.height),
        selection_reason=reason,
        hold=True,
    )


def _synthetic(camera: CameraSettings, reason: str) -> SyntheticFrameSource:
    return SyntheticFrameSource(
        camera.width, camera.height, camera.simulator_fps, selection_reason=reason
    )


def open_illuminator(camera: CameraSettings) -> Illuminator:
    """Open the station's light per ``camera.illuminator_port``.

    An empty port gives a :class:`ManualIlluminator`; ``simulator`` starts a simulated
    controller on a pseudo-terminal (stopped when the illuminator closes); anything else is
    the serial port of a real controller.

    Raises:
        IlluminatorError: If the controller cannot be opened or lacks a configured band.
    """
    port = camera.illuminator_port.strip()
    if not port:
        return ManualIlluminator(camera.bands)
    on_close = None
    if port == "simulator":
        simulator = LedControllerSimulator()
        port, on_close = simulator.start(), simulator.stop
    illuminator = SerialIlluminator(
        port,
        camera.bands,
        camera.illuminator_baudrate,
        camera.illuminator_timeout_seconds,
        on_close=on_close,
    )
    try:
        illuminator.open()
    except Exception:
        if on_close is not None:
            on_close()
        raise
    return illuminator
