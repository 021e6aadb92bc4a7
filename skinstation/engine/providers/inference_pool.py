"""The API process's classifier: the current promoted model, run in a bounded thread pool.

Each API worker process loads the model of the engine's current deployment once (from the
registry's storage, checked against the signed manifest's content sha256) and reloads it only
when a new model is deployed (promotion or rollback), which it notices within
``model_check_seconds``. Classification runs in ``threads`` pool threads; at most ``threads +
queue_depth`` calls may be in flight per process. A call finding no free slot is refused at
once with 503 (it never waits), so a burst cannot pile up decoded images in memory or
requests that time out. With ``N`` uvicorn workers the engine serves ``N x (threads +
queue_depth)`` calls at a time.

Settings come from the environment of the serving process (``skinstation engine serve``
sets them from its options): ``SKINSTATION_ENGINE_CLASSIFY_THREADS`` (default 1),
``SKINSTATION_ENGINE_CLASSIFY_QUEUE`` (8), ``SKINSTATION_ENGINE_CLASSIFY_TORCH_THREADS``
(cores / workers), ``SKINSTATION_ENGINE_CLASSIFY_MAX_PIXELS`` (40 megapixels).
"""

from __future__ import annotations

import asyncio
import os
import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, TypeVar

from skinstation.core.images import ImageLimits
from skinstation.engine.database import EngineDatabase
from skinstation.engine.errors import UnavailableError
from skinstation.engine.models import service as registry

if TYPE_CHECKING:
    from skinstation.inference.classifier import Classifier

T = TypeVar("T")
ENV_PREFIX = "SKINSTATION_ENGINE_CLASSIFY_"


@dataclass(frozen=True)
class ClassifySettings:
    """Capacity and limits of classification in one API process.

    Attributes:
        threads: Pool threads classifying at the same time.
        queue_depth: Further calls that may wait for a thread; beyond that 503.
        torch_threads: PyTorch intra-op threads of the process.
        limits: Pixel sizes accepted, the same for every image the engine receives (station
            ingest takes them from here too).
        model_check_seconds: How often the current deployment is looked up.
    """

    threads: int = 1
    queue_depth: int = 8
    torch_threads: int = 1
    limits: ImageLimits = field(default_factory=ImageLimits)
    model_check_seconds: float = 10.0

    def __post_init__(self) -> None:
        if self.threads < 1 or self.queue_depth < 0 or self.torch_threads < 1:
            raise ValueError("classify threads and torch threads must be >= 1, queue >= 0")

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> ClassifySettings:
        """Read ``SKINSTATION_ENGINE_CLASSIFY_*`` variables (defaults for unset ones)."""
        env = os.environ if env is None else env
        cores = os.cpu_count() or 1
        values: dict[str, int] = {"torch_threads": max(1, cores)}
        for name in ("threads", "queue", "torch_threads"):
            raw = env.get(ENV_PREFIX + name.upper())
            if raw:
                values["queue_depth" if name == "queue" else name] = int(raw)
        max_pixels = env.get(ENV_PREFIX + "MAX_PIXELS")
        limits = ImageLimits(max_pixels=int(max_pixels)) if max_pixels else ImageLimits()
        return cls(**values, limits=limits)


class ModelHolder:
    """The current deployed model of this process, loaded once and swapped on deployment."""

    def __init__(self, db: EngineDatabase, settings: ClassifySettings) -> None:
        self.db = db
        self.settings = settings
        self._lock = threading.Lock()
        self._classifier: Classifier | None = None
        self._deployment: int | None = None
        self._checked = 0.0

    def get(self) -> Classifier:
        """The classifier of the current deployment (loads or reloads it when needed).

        Raises:
            UnavailableError: No model is deployed, or its stored file does not match the
                signed manifest.
        """
        with self._lock:
            now = time.monotonic()
            fresh = now - self._checked < self.settings.model_check_seconds
            if self._classifier is not None and fresh:
                return self._classifier
            signed = registry.current(self.db)
            self._checked = now
            if signed is None:
                raise UnavailableError("no model is deployed on this engine yet; ask the engine "
                                       "administrator", retry_after=60)
            manifest = signed.manifest
            if self._classifier is None or manifest["deployment"] != self._deployment:
                self._classifier = self._load(manifest)
                self._deployment = manifest["deployment"]
            return self._classifier

    def _load(self, manifest: Mapping[str, object]) -> Classifier:
        from skinstation.inference.classifier import Classifier  # torch only when classifying

        path = registry.deployed_file(self.db, str(manifest["version"]))
        classifier = Classifier.load(path, threads=self.settings.torch_threads)
        if classifier.metadata.content_sha256 != manifest["content_sha256"]:
            raise UnavailableError(f"stored model file of {manifest['version']} does not match "
                                   "its signed manifest; the engine administrator must check it",
                                   retry_after=60)
        return classifier


class InferencePool:
    """A fixed number of classification threads behind a bounded number of slots."""

    def __init__(self, settings: ClassifySettings) -> None:
        self.settings = settings
        self._executor = ThreadPoolExecutor(settings.threads, thread_name_prefix="classify")
        self._slots = threading.BoundedSemaphore(settings.threads + settings.queue_depth)

    def try_acquire(self) -> bool:
        """Take a slot if one is free (never waits)."""
        return self._slots.acquire(blocking=False)

    def release(self) -> None:
        """Give a slot back."""
        self._slots.release()

    async def run(self, function: Callable[..., T], *args: object) -> T:
        """Run ``function(*args)`` on a pool thread and await its result."""
        return await asyncio.wrap_future(self._executor.submit(function, *args))

    def shutdown(self) -> None:
        """Stop the threads (running calls finish)."""
        self._executor.shutdown(wait=True, cancel_futures=True)
