"""The generic worker thread: every blocking call of the station runs off the GUI thread.

:class:`TaskRunner` is one ``QThread`` with an executor object that runs submitted callables
one after the other (database work, classification, heatmaps, saving). Results and errors
come back to the GUI thread through queued signals and are handed to the caller's callbacks.
The camera has its own thread: :mod:`skinstation.ui.camera_worker`.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np
from PySide6.QtCore import QObject, QThread, Signal, Slot
from PySide6.QtGui import QImage

log = logging.getLogger(__name__)

FAST_PATHS = True
"""The capture → result fast paths of issue 19 (``bench/bench_capture_latency.py --baseline``
turns them off to measure the station as it was before)."""

Callback = Callable[[Any], None]


def to_qimage(rgb: np.ndarray, max_width: int = 0, max_height: int = 0) -> QImage:
    """An owned RGB888 ``QImage`` of ``rgb``, scaled down to fit the limits if given."""
    height, width = rgb.shape[:2]
    if max_width and max_height and (width > max_width or height > max_height):
        scale = min(max_width / width, max_height / height)
        size = (max(1, round(width * scale)), max(1, round(height * scale)))
        rgb = cv2.resize(rgb, size, interpolation=cv2.INTER_AREA)
        height, width = rgb.shape[:2]
    rgb = np.ascontiguousarray(rgb)
    image = QImage(rgb.data, width, height, 3 * width, QImage.Format.Format_RGB888)
    return image.copy()


# -- generic task runner ------------------------------------------------------------------


@dataclass(frozen=True)
class _Job:
    number: int
    function: Callable[[], Any]


class _Executor(QObject):
    """Lives in the runner's thread; runs one job per queued ``run`` call."""

    finished = Signal(int, object)
    failed = Signal(int, object)

    @Slot(object)
    def run(self, job: _Job) -> None:
        try:
            result = job.function()
        except Exception as exc:
            log.info("task %d failed: %s", job.number, exc, exc_info=True)
            self.failed.emit(job.number, exc)
        else:
            self.finished.emit(job.number, result)


class TaskRunner(QObject):
    """Runs callables in one worker thread, in submission order.

    Args:
        name: Thread name (shown by debuggers and in logs).
        parent: Owning QObject.
    """

    _submit = Signal(object)
    busy_changed = Signal(bool)

    def __init__(self, name: str, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._thread = QThread()
        self._thread.setObjectName(name)
        self._executor = _Executor()
        self._executor.moveToThread(self._thread)
        self._submit.connect(self._executor.run)
        self._executor.finished.connect(self._on_finished)
        self._executor.failed.connect(self._on_failed)
        self._callbacks: dict[int, tuple[Callback | None, Callback | None]] = {}
        self._numbers = itertools.count(1)
        self._thread.start()

    @property
    def pending(self) -> int:
        """Jobs submitted and not yet finished."""
        return len(self._callbacks)

    def run(self, function: Callable[[], Any], on_done: Callback | None = None,
            on_error: Callback | None = None) -> int:
        """Queue ``function``; ``on_done(result)`` or ``on_error(exception)`` runs in the GUI.

        Returns:
            The job number.
        """
        number = next(self._numbers)
        self._callbacks[number] = (on_done, on_error)
        if len(self._callbacks) == 1:
            self.busy_changed.emit(True)
        self._submit.emit(_Job(number, function))
        return number

    def _pop(self, number: int) -> tuple[Callback | None, Callback | None]:
        callbacks = self._callbacks.pop(number, (None, None))
        if not self._callbacks:
            self.busy_changed.emit(False)
        return callbacks

    @Slot(int, object)
    def _on_finished(self, number: int, result: object) -> None:
        on_done, _ = self._pop(number)
        if on_done is not None:
            on_done(result)

    @Slot(int, object)
    def _on_failed(self, number: int, error: object) -> None:
        _, on_error = self._pop(number)
        if on_error is not None:
            on_error(error)
        else:
            log.error("unhandled task error: %s", error)

    def shutdown(self, timeout_ms: int = 15000) -> None:
        """Run the jobs already queued, then stop the thread (their callbacks are dropped)."""
        self._callbacks.clear()
        if self._thread.isRunning():
            self._submit.emit(_Job(0, lambda: QThread.currentThread().quit()))
        if not self._thread.wait(timeout_ms):
            log.error("task thread %s did not stop in time", self._thread.objectName())
