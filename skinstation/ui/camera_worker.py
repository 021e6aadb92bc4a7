"""The camera thread: live preview, quality indicators, stills and multispectral sequences.

:class:`CameraWorker` owns the frame source and the illuminator in its own ``QThread``: it
reads frames for the live preview (scaled down in the worker, handed over as ``QImage``), runs
the live quality checks, and takes stills and multispectral sequences. A sequence runs inside
one slot, so the preview is paused while it runs and cannot steal a band's frames.
A simulated dermatoscope holds one lesion; the worker remembers which, so reopening the preview
shows the same one, and moves it on only when asked (:meth:`CameraController.next_lesion`, and
:meth:`CameraController.hold_lesion_for` a new visit).
:class:`CameraController` is its handle on the GUI side.
"""

from __future__ import annotations

import collections
import dataclasses
import itertools
import logging
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from PySide6.QtCore import QObject, Qt, QThread, QTimer, Signal, Slot
from PySide6.QtGui import QImage

from skinstation.camera import (
    CameraError,
    FrameSource,
    Illuminator,
    IlluminatorError,
    SimulatedDermatoscope,
    assess_quality,
    capture_multispectral,
    capture_still,
    open_frame_source,
    open_illuminator,
)
from skinstation.settings import CameraSettings, QualitySettings
from skinstation.ui import workers
from skinstation.ui.camera_still import StillRequest
from skinstation.ui.camera_still import queued_command as _command
from skinstation.ui.workers import to_qimage

log = logging.getLogger(__name__)

SourceFactory = Callable[[CameraSettings], FrameSource]
"""Opens the frame source for camera settings (default :func:`open_frame_source`)."""


@dataclass(frozen=True)
class SourceInfo:
    """What the camera worker opened, for the capture screen to say so.

    Attributes:
        device_id: The source's device id.
        kind: ``camera``, ``simulator`` or ``synthetic``.
        reason: Why it was chosen.
        bands: ``(name, display_name)`` of each band offered.
        light: The illuminator's description (empty if none could be opened).
        light_error: Why the light could not be opened (empty if it was).
        can_sequence: A multispectral sequence is possible (a controller switches the light).
        band: The band lit now ("" if none).
        light_simulated: The light is the simulated LED controller.
        lesion: File name of the lesion a simulated dermatoscope holds ("" otherwise).
        can_change_lesion: The source is a simulated dermatoscope that can move to another
            lesion (:meth:`CameraController.next_lesion`).
        light_text: The text key and values of ``light`` (the screen shows it translated).
        light_failure: The error behind ``light_error`` (None if the light opened).
    """

    device_id: str
    kind: str
    reason: str
    bands: tuple[tuple[str, str], ...]
    light: str
    light_error: str
    can_sequence: bool
    band: str = ""
    light_simulated: bool = False
    lesion: str = ""
    can_change_lesion: bool = False
    light_text: tuple[str, dict[str, str]] = ("", {})
    light_failure: BaseException | None = None


def _held(source: FrameSource | None) -> SimulatedDermatoscope | None:
    """``source`` if it is a simulated dermatoscope holding a lesion, else None."""
    if isinstance(source, SimulatedDermatoscope) and source.holds_lesion:
        return source
    return None


class CameraWorker(QObject):
    """Owns the frame source and the light; runs only in the camera thread."""

    opened = Signal(object)
    frame_ready = Signal(QImage, float)
    quality_ready = Signal(object)
    captured = Signal(object, str, float)
    sequence_captured = Signal(object, float)
    sequence_running = Signal(bool)
    band_changed = Signal(str)
    lesion_changed = Signal(str)
    failed = Signal(str, object)
    stopped = Signal()

    QUALITY_INTERVAL_S = 0.4

    def __init__(self, preview_size: tuple[int, int] = (960, 720),
                 source_factory: SourceFactory | None = None) -> None:
        super().__init__()
        self.preview_size = preview_size
        self.source_factory: SourceFactory = source_factory or open_frame_source
        self._source: FrameSource | None = None
        self._light: Illuminator | None = None
        self._timer: QTimer | None = None
        self._camera = CameraSettings()
        self._quality = QualitySettings()
        self._band = "white"
        self._last_quality = 0.0
        self._lesion_index = 0
        self.still = StillRequest()
        """A still asked for by the GUI, answered by the preview loop (see :mod:`.camera_still`)."""
        self.frame_consumed = True
        """Set by the GUI when it has shown the last preview frame (drops frames meanwhile)."""

    @Slot(object, object)
    @_command
    def start(self, camera: CameraSettings, quality: QualitySettings) -> None:
        """Open the source (and the light) and start the preview loop."""
        self.stop()
        self._camera, self._quality = camera, quality
        try:
            self._source = self.source_factory(camera)
            if not self._source.is_open:
                self._source.open()
            held = _held(self._source)
            if held is not None:
                held.select_lesion(self._lesion_index)
        except (CameraError, OSError) as exc:
            self.failed.emit("camera", exc)
            return
        self.still.light_switched()
        light_error, light_failure = "", None
        light_settings = camera
        if not camera.illuminator_port.strip() and self._source.kind != "camera":
            # Everything simulated: drive the simulated LED controller too (and say so).
            light_settings = _with_port(camera, "simulator")
        try:
            self._light = open_illuminator(light_settings)
        except (IlluminatorError, OSError, ValueError) as exc:
            light_error, light_failure = str(exc), exc
            self._light = None
        bands: tuple[tuple[str, str], ...] = ()
        if self._light is not None:
            bands = tuple((b.name, b.display_name) for b in self._light.bands)
            self._band = bands[0][0] if bands else "white"
            self._switch_light(self._band)
        self.opened.emit(SourceInfo(
            self._source.device_id, self._source.kind, self._source.selection_reason, bands,
            self._light.description if self._light is not None else "", light_error,
            self._light is not None and not self._light.manual,
            self._band if self._light is not None and self._light.current_band else "",
            light_settings.illuminator_port == "simulator",
            held.lesion if held is not None else "", held is not None,
            self._light.description_text if self._light is not None else ("", {}),
            light_failure))
        self.frame_consumed = True
        self._timer = QTimer(self)
        self._timer.setInterval(0)
        self._timer.timeout.connect(self._tick)
        self._timer.start()

    def _switch_light(self, band: str) -> None:
        if self._light is None:
            return
        try:
            self._light.set_band(band)
        except (IlluminatorError, ValueError, OSError) as exc:
            self.failed.emit("light", exc)
            return
        self._band = band
        self.still.light_switched()
        self.band_changed.emit(band)

    @Slot()
    def _tick(self) -> None:
        source = self._source
        if source is None or not source.is_open:
            return
        try:
            frame = source.read()
        except CameraError as exc:
            self._halt()
            self.failed.emit("camera", exc)
            return
        requested = self.still.frame_read(time.perf_counter(), self._camera.stale_frames)
        if requested is not None:
            self.captured.emit(frame, self._band, requested)
        if self.frame_consumed:
            self.frame_consumed = False
            self.frame_ready.emit(to_qimage(frame.pixels, *self.preview_size), frame.timestamp)
        now = time.monotonic()
        if now - self._last_quality >= self.QUALITY_INTERVAL_S:
            self._last_quality = now
            self.quality_ready.emit(assess_quality(frame.pixels, self._quality))

    @Slot(str)
    @_command
    def set_band(self, band: str) -> None:
        """Light ``band`` for the preview and the next still."""
        self._switch_light(band)

    @Slot()
    @_command
    def next_lesion(self) -> None:
        """Move a simulated dermatoscope to the next lesion (now, or when it next opens)."""
        self._lesion_index += 1
        held = _held(self._source)
        if held is not None and held.is_open:
            self.lesion_changed.emit(held.select_lesion(self._lesion_index))

    @Slot(float)
    def capture(self, requested_at: float) -> None:
        """Take one fresh still under the current band (unless the preview loop took it)."""
        fast = workers.FAST_PATHS
        if fast and not self.still.claim(requested_at):
            return  # a preview frame read after the request answered it (:meth:`_tick`)
        if self._source is None or not self._source.is_open:
            self.failed.emit("capture", CameraError("the camera is not open"))
            return
        stale = self._camera.stale_frames
        if fast:  # the frames a streaming preview read since the last switch count
            stale = self.still.stale_left(stale, bool(self._timer and self._timer.isActive()))
        try:
            frame = capture_still(self._source, stale)
        except CameraError as exc:
            self._halt()
            self.failed.emit("camera", exc)
            return
        self.captured.emit(frame, self._band, requested_at)

    @Slot(object, float)
    def capture_sequence(self, bands: Sequence[str] | None, requested_at: float) -> None:
        """Take one frame per band; the preview loop waits until it is done."""
        if self._source is None or not self._source.is_open or self._light is None:
            self.failed.emit("capture", CameraError("camera or light controller not open"))
            return
        self.sequence_running.emit(True)
        try:
            stack = capture_multispectral(
                self._source, self._light, bands=list(bands) if bands else None,
                settle_seconds=self._camera.band_settle_seconds,
                discard_stale=self._camera.stale_frames)
        except CameraError as exc:
            self._halt()
            self.failed.emit("camera", exc)
            return
        except (IlluminatorError, ValueError, OSError) as exc:
            self.failed.emit("light", exc)
            return
        finally:
            self.sequence_running.emit(False)
        self._switch_light(self._band)
        self.sequence_captured.emit(stack, requested_at)

    def _halt(self) -> None:
        if self._timer is not None:
            self._timer.stop()

    @Slot()
    def stop(self) -> None:
        """Stop the preview and release the source and the light."""
        if self._timer is not None:
            self._timer.stop()
            self._timer.deleteLater()
            self._timer = None
        self.release()
        self.stopped.emit()

    def release(self) -> None:
        """Close the source and the light (thread-agnostic; no timer is touched)."""
        source, self._source = self._source, None
        light, self._light = self._light, None
        if source is not None:
            source.close()
        if light is not None:
            try:
                light.close()
            except (IlluminatorError, OSError) as exc:
                log.warning("closing the light failed: %s", exc)


def _with_port(camera: CameraSettings, port: str) -> CameraSettings:
    return dataclasses.replace(camera, illuminator_port=port)


class CameraController(QObject):
    """GUI-side handle of the camera thread; re-emits the worker's signals.

    The preview frame rate is measured on frames actually shown (:meth:`frame_shown`).
    """

    _start = Signal(object, object)
    _stop = Signal()
    _capture = Signal(float)
    _sequence = Signal(object, float)
    _band = Signal(str)
    _next_lesion = Signal()
    _stop_and_wait = Signal()

    def __init__(self, parent: QObject | None = None,
                 source_factory: SourceFactory | None = None) -> None:
        super().__init__(parent)
        self._thread = QThread()
        self._thread.setObjectName("camera")
        self.worker = CameraWorker(source_factory=source_factory)
        self.worker.moveToThread(self._thread)
        self._start.connect(self.worker.start)
        self._stop.connect(self.worker.stop)
        self._capture.connect(self.worker.capture)
        self._sequence.connect(self.worker.capture_sequence)
        self._band.connect(self.worker.set_band)
        self._next_lesion.connect(self.worker.next_lesion)
        self._stop_and_wait.connect(self.worker.stop, Qt.ConnectionType.BlockingQueuedConnection)
        self._shown: collections.deque[float] = collections.deque(maxlen=60)
        self.record: list[float] | None = None
        """Set to a list to record the time of every frame shown (benchmarks)."""
        self.running = False
        self.lesion = ""
        """The lesion the simulated dermatoscope holds ("" for any other source)."""
        self._lesion_key: object = None
        self.worker.failed.connect(self._on_failed)
        self.worker.opened.connect(self._on_opened)
        self.worker.lesion_changed.connect(self._on_lesion_changed)
        self._thread.start()

    def start(self, camera: CameraSettings, quality: QualitySettings) -> None:
        """Open the source and start the preview (in the camera thread)."""
        self._shown.clear()
        self.running = True
        self.worker.still.command_sent()
        self._start.emit(camera, quality)

    def stop(self) -> None:
        """Stop the preview and release the camera."""
        self.running = False
        self._stop.emit()

    def capture(self) -> float:
        """Request a still; returns the request time (``time.perf_counter``).

        The preview loop answers with the first fresh frame it reads; the queued request is
        the fallback when no preview frame does (see :mod:`.camera_still`).
        """
        requested = time.perf_counter()
        if workers.FAST_PATHS:
            self.worker.still.ask(requested)
        self._capture.emit(requested)
        return requested

    def capture_sequence(self, bands: Sequence[str] | None = None) -> float:
        """Request a multispectral sequence; returns the request time."""
        requested = time.perf_counter()
        self._sequence.emit(list(bands) if bands else None, requested)
        return requested

    def set_band(self, band: str) -> None:
        """Switch the light to ``band``."""
        self.worker.still.command_sent()
        self._band.emit(band)

    def next_lesion(self) -> None:
        """Move a simulated dermatoscope to the next lesion (no-op for other sources)."""
        self.worker.still.command_sent()
        self._next_lesion.emit()

    def hold_lesion_for(self, key: object) -> None:
        """Show a new lesion when ``key`` (e.g. the open visit's id) differs from the last."""
        if key != self._lesion_key:
            self._lesion_key = key
            self.next_lesion()

    def frame_shown(self) -> None:
        """The GUI displayed the last preview frame: count it and accept the next one."""
        now = time.perf_counter()
        self._shown.append(now)
        if self.record is not None:
            self.record.append(now)
        self.worker.frame_consumed = True

    def fps(self) -> float:
        """Preview frames shown per second over the last (up to) 60 frames."""
        if len(self._shown) < 2:
            return 0.0
        span = self._shown[-1] - self._shown[0]
        return (len(self._shown) - 1) / span if span > 0 else 0.0

    def median_fps(self) -> float:
        """Frame rate from the median interval between the last (up to) 60 shown frames."""
        intervals = [b - a for a, b in itertools.pairwise(self._shown)]
        return 1.0 / statistics.median(intervals) if intervals else 0.0

    @Slot(object)
    def _on_opened(self, info: SourceInfo) -> None:
        self.lesion = info.lesion

    @Slot(str)
    def _on_lesion_changed(self, lesion: str) -> None:
        self.lesion = lesion

    @Slot(str, object)
    def _on_failed(self, kind: str, error: object) -> None:
        if kind == "camera":
            self.running = False

    def shutdown(self, timeout_ms: int = 10000) -> None:
        """Stop the thread, then release the camera and the light."""
        self.running = False
        if self._thread.isRunning():
            self._stop_and_wait.emit()  # runs stop() in the camera thread, then returns
        self._thread.quit()
        if not self._thread.wait(timeout_ms):
            log.error("camera thread did not stop in time")
        self.worker.release()
