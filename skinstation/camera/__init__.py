"""The station's camera, illumination and capture-quality layer (no Qt here).

Typical use by the services layer::

    from skinstation.camera import (
        assess_quality, capture_multispectral, capture_still, open_frame_source,
        open_illuminator,
    )

    with open_frame_source(settings.camera) as source, open_illuminator(settings.camera) as light:
        frame = capture_still(source, settings.camera.stale_frames)
        report = assess_quality(frame.pixels, settings.quality)
        stack = capture_multispectral(source, light, settle_seconds=0.15)

Modules: :mod:`.frames` (Frame, FrameSource, errors), :mod:`.opencv_camera` (physical
cameras), :mod:`.simulator` (simulated dermatoscope), :mod:`.drift`
(its hand motion), :mod:`.cable` (its fault injector), :mod:`.synthetic` (labelled synthetic
frames), :mod:`.devices` (listing), :mod:`.factory` (choosing from settings),
:mod:`.illumination` (bands, LED controller protocol and drivers), :mod:`.led_simulator`,
:mod:`.capture` (stills and multispectral stacks) and :mod:`.quality`.
"""

from skinstation.camera.cable import SimulatedCable
from skinstation.camera.capture import BandFrame, capture_multispectral, capture_still
from skinstation.camera.devices import CameraDevice, list_cameras
from skinstation.camera.factory import open_frame_source, open_illuminator
from skinstation.camera.frames import (
    SYNTHETIC_LABEL,
    CameraDisconnectedError,
    CameraError,
    CameraUnavailableError,
    Frame,
    FrameSource,
    SourceKind,
    SourceProperties,
)
from skinstation.camera.illumination import (
    BANDS,
    Band,
    Illuminator,
    IlluminatorError,
    ManualIlluminator,
    SerialIlluminator,
    resolve_bands,
)
from skinstation.camera.led_simulator import LedControllerSimulator
from skinstation.camera.opencv_camera import CameraFrameSource
from skinstation.camera.simulator import SimulatedDermatoscope
from skinstation.camera.synthetic import SyntheticFrameSource
from skinstation.inference.quality import QualityCheck, QualityReport, assess_quality

__all__ = [
    "BANDS",
    "SYNTHETIC_LABEL",
    "Band",
    "BandFrame",
    "CameraDevice",
    "CameraDisconnectedError",
    "CameraError",
    "CameraFrameSource",
    "CameraUnavailableError",
    "Frame",
    "FrameSource",
    "Illuminator",
    "IlluminatorError",
    "LedControllerSimulator",
    "ManualIlluminator",
    "QualityCheck",
    "QualityReport",
    "SerialIlluminator",
    "SimulatedCable",
    "SimulatedDermatoscope",
    "SourceKind",
    "SourceProperties",
    "SyntheticFrameSource",
    "assess_quality",
    "capture_multispectral",
    "capture_still",
    "list_cameras",
    "open_frame_source",
    "open_illuminator",
    "resolve_bands",
]
