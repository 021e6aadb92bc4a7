"""Taking captures: one fresh still, or one frame per illumination band.

Both functions return complete frames or raise; there is never a partial result to save.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from skinstation.camera.frames import CameraError, Frame, FrameSource
from skinstation.camera.illumination import Band, Illuminator, IlluminatorError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class BandFrame:
    """A frame taken under one illumination band."""

    band: Band
    frame: Frame


def capture_still(source: FrameSource, discard_stale: int = 0) -> Frame:
    """Return a fresh, complete frame.

    Args:
        source: An open frame source.
        discard_stale: Frames to drop first: ones the driver buffered before the scene (or
            the light) changed.

    Raises:
        CameraError: If the source is closed; :class:`CameraDisconnectedError` if the device
            stops delivering frames.
    """
    if not source.is_open:
        raise CameraError(f"{source.device_id} is not open")
    if discard_stale:
        source.discard(discard_stale)
    return source.read()


def capture_multispectral(
    source: FrameSource,
    illuminator: Illuminator,
    bands: Sequence[str] | None = None,
    settle_seconds: float = 0.15,
    discard_stale: int = 2,
    sleep: Callable[[float], None] = time.sleep,
) -> list[BandFrame]:
    """Take one frame per band, in order, and switch the light off at the end.

    For each band: switch the light, wait ``settle_seconds`` for the LEDs and the camera's
    auto-exposure to settle, drop ``discard_stale`` buffered frames (taken under the previous
    light), then read a fresh frame. The light is switched off afterwards, also on error.

    Args:
        source: An open frame source.
        illuminator: An open illuminator.
        bands: Band names in capture order; default: all the illuminator's bands.
        settle_seconds: Wait after each switch.
        discard_stale: Buffered frames to drop after each switch.
        sleep: The waiting function (injectable so tests can record the waits).

    Returns:
        One :class:`BandFrame` per band, in the order asked.

    Raises:
        ValueError: If a band is not configured (before any light is switched).
        IlluminatorError: If the light cannot be set or switched off.
        CameraError: If the camera fails; the light is still switched off.
    """
    selected = (
        list(illuminator.bands) if bands is None else [illuminator.band(name) for name in bands]
    )
    if not selected:
        raise ValueError("no band to capture")
    captured: list[BandFrame] = []
    try:
        for band in selected:
            illuminator.set_band(band.name)
            sleep(settle_seconds)
            captured.append(BandFrame(band, capture_still(source, discard_stale)))
    except BaseException:
        _switch_off_after_error(illuminator)
        raise
    illuminator.off()
    return captured


def _switch_off_after_error(illuminator: Illuminator) -> None:
    """Switch the light off while another error is on its way; log if that fails too."""
    try:
        illuminator.off()
    except IlluminatorError as exc:
        log.error("could not switch the light off after a failed capture: %s", exc)
