"""Which model the station classifies with, and switching to a new one safely.

The station starts on the model named by ``settings.model_path`` (the bundled default), unless
a model received by sync has been installed: then ``<home>/models/current.json`` names it.
Installing verifies the file (sha256 inside the file, and the expected file sha256 from the
signed manifest when given), loads and warms it up, and only then switches — a bad file is
refused and the old model stays in use.
"""

from __future__ import annotations

import json
import os
import shutil
import threading
from dataclasses import dataclass
from pathlib import Path

from skinstation.inference.classifier import Classifier
from skinstation.inference.model_file import ModelFileError, ModelMetadata, file_sha256
from skinstation.inference.taxonomy import load_taxonomy
from skinstation.settings import Settings


@dataclass(frozen=True)
class ModelInfo:
    """What the UI shows about the model in use."""

    version: str
    path: Path
    created_at: str
    metrics: dict
    referral_threshold: float | None
    source: str


class ModelManager:
    """Loads the current model once and swaps it atomically on install."""

    def __init__(self, settings: Settings, threads: int | None = None) -> None:
        self.settings = settings
        self.threads = threads or settings.torch_threads
        self._lock = threading.Lock()
        self._classifier: Classifier | None = None
        self._path: Path | None = None

    @property
    def models_dir(self) -> Path:
        """Where received models are kept."""
        return self.settings.home / "models"

    def current_path(self) -> Path:
        """The installed model if any, else the configured (bundled) one."""
        pointer = self.models_dir / "current.json"
        if pointer.is_file():
            name = json.loads(pointer.read_text(encoding="utf-8"))["file"]
            candidate = self.models_dir / name
            if candidate.is_file():
                return candidate
        return Path(self.settings.model_path)

    def classifier(self) -> Classifier:
        """The loaded classifier (loaded and verified on first use).

        Raises:
            ModelFileError: If the model file is missing, truncated or tampered.
        """
        with self._lock:
            path = self.current_path()
            if self._classifier is None or self._path != path:
                self._classifier = Classifier.load(path, threads=self.threads)
                self._path = path
            return self._classifier

    def class_codes(self) -> tuple[str, ...]:
        """The diagnosis classes a person may choose, from the model file's own taxonomy.

        The loaded model's taxonomy once a model is loaded; until then (or when no model
        loads) the bundled taxonomy, so that a form never waits on loading the weights.
        """
        loaded = self._classifier  # one read, no lock: loading holds the lock for seconds
        if loaded is not None:
            return tuple(loaded.taxonomy.classes)
        return tuple(load_taxonomy().classes)

    def info(self) -> ModelInfo:
        """Version, file, metrics and threshold of the model in use."""
        classifier = self.classifier()
        metadata: ModelMetadata = classifier.metadata
        assert self._path is not None
        source = "installed" if self._path.parent == self.models_dir else "bundled"
        return ModelInfo(metadata.model_version, self._path, metadata.created_at,
                         metadata.metrics, classifier.referral_threshold, source)

    def install(self, candidate: Path, expected_sha256: str | None = None) -> ModelInfo:
        """Verify, load and switch to ``candidate``; the old model stays on any error.

        Args:
            candidate: A downloaded model file.
            expected_sha256: File sha256 from a verified (signed) manifest.

        Raises:
            ModelFileError: If the hash differs or the file does not load.
        """
        if expected_sha256 is not None:
            actual = file_sha256(candidate)
            if actual != expected_sha256:
                raise ModelFileError(
                    f"model file {candidate.name} has sha256 {actual[:16]}…, the signed "
                    f"manifest says {expected_sha256[:16]}…; refused"
                )
        loaded = Classifier.load(candidate, threads=self.threads)
        self.models_dir.mkdir(parents=True, exist_ok=True)
        target = self.models_dir / f"{loaded.version}.safetensors"
        if candidate.resolve() != target.resolve():
            temporary = target.with_suffix(".partial")
            shutil.copyfile(candidate, temporary)
            os.replace(temporary, target)
        pointer = self.models_dir / "current.json"
        temporary_pointer = pointer.with_suffix(".partial")
        temporary_pointer.write_text(json.dumps({"file": target.name,
                                                 "version": loaded.version}), encoding="utf-8")
        os.replace(temporary_pointer, pointer)
        with self._lock:
            self._classifier, self._path = loaded, target
        return self.info()
