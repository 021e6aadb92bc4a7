"""The versioned SkinStation model file: weights plus everything needed to use them.

Format: a safetensors file (no pickled code can run on load) whose header metadata holds one
JSON document under the key ``skinstation``: architecture, classes, taxonomy, preprocessing
config, calibration temperature, operating thresholds, metrics, training-data fingerprint and
creation time. ``content_sha256`` in that document covers every tensor (name, dtype, shape,
bytes) and the rest of the document, so a changed weight, a changed threshold or a truncated
file is refused with :class:`ModelIntegrityError` / :class:`ModelFileError`.

Files are written atomically (temporary file, fsync, rename): an interrupted save never leaves a
half-written model behind.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load as load_safetensors
from safetensors.torch import save as save_safetensors

from skinstation.core.files import write_atomically

FORMAT = "skinstation-model/1"
_METADATA_KEY = "skinstation"


class ModelFileError(ValueError):
    """The file is missing, truncated, or not a SkinStation model file."""


class ModelIntegrityError(ModelFileError):
    """The file parses but its content does not match its recorded sha256 (tampered)."""


@dataclass
class ModelMetadata:
    """Everything stored beside the weights.

    Attributes:
        model_version: Unique version string, e.g. ``ham10000-mnv2-20261125T0310``.
        architecture: Registry name in :mod:`skinstation.inference.network`.
        classes: Fine class codes in output order.
        taxonomy: Taxonomy JSON (classes → groups).
        preprocess: :class:`PreprocessConfig` as a dict.
        temperature: Logit temperature fitted on validation data (1.0 = uncalibrated).
        class_bias: Per-class logit offsets applied with the temperature (empty = none).
        training_log_prior: Log class prior the network was trained against (logit-adjusted
            loss: its logits are balanced-posterior scores); added back to the logits before
            the temperature, so shown probabilities are calibrated (empty = none).
        referral: Safety referral threshold and the validation figures it achieved.
        assessability: Out-of-distribution score, its threshold and false-rejection rate.
        metrics: Evaluation summaries (e.g. ``{"ham10000_test": {...}}``).
        data_fingerprint: sha256 over the training records and split.
        created_at: ISO-8601 UTC creation time.
        parent_version: Version this model was trained from or compared against.
        training: Training hyper-parameters and timings.
        content_sha256: Filled in on save; verified on load.
    """

    model_version: str
    architecture: str
    classes: list[str]
    taxonomy: dict[str, Any]
    preprocess: dict[str, Any]
    temperature: float = 1.0
    class_bias: list[float] = field(default_factory=list)
    training_log_prior: list[float] = field(default_factory=list)
    referral: dict[str, Any] = field(default_factory=dict)
    assessability: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)
    data_fingerprint: str = ""
    created_at: str = ""
    parent_version: str = ""
    training: dict[str, Any] = field(default_factory=dict)
    content_sha256: str = ""
    format: str = FORMAT

    def to_json(self) -> str:
        """Serialise canonically (sorted keys) for storage.

        Fields added later (``OMITTED_WHEN_EMPTY``) are left out while empty, so files made
        before them keep their bytes and sha256, and older readers still read such files
        (a file that uses one is refused by them as an unknown field, as it should be).
        """
        data = dataclasses.asdict(self)
        for name in OMITTED_WHEN_EMPTY:
            if not data[name]:
                del data[name]
        return json.dumps(data, sort_keys=True, separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str) -> ModelMetadata:
        """Parse stored metadata; unknown keys are ignored only if they start with ``x_``."""
        data = json.loads(text)
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = [k for k in data if k not in known and not k.startswith("x_")]
        if unknown:
            raise ModelFileError(f"unknown model metadata field(s): {', '.join(sorted(unknown))}")
        return cls(**{k: v for k, v in data.items() if k in known})


OMITTED_WHEN_EMPTY = ("training_log_prior",)
"""Metadata fields newer than the format: absent from the JSON while empty."""


def content_digest(tensors: dict[str, torch.Tensor], metadata: ModelMetadata) -> str:
    """sha256 over every tensor and the metadata (without its own ``content_sha256``)."""
    digest = hashlib.sha256()
    unsigned = dataclasses.replace(metadata, content_sha256="")
    digest.update(unsigned.to_json().encode("utf-8"))
    for name in sorted(tensors):
        tensor = tensors[name].detach().contiguous().cpu()
        digest.update(f"\0{name}\0{tensor.dtype}\0{tuple(tensor.shape)}\0".encode())
        digest.update(tensor.reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def save_model_file(
    path: str | Path, state_dict: dict[str, torch.Tensor], metadata: ModelMetadata
) -> ModelMetadata:
    """Write weights and metadata atomically; returns the metadata with its sha256 filled in."""
    path = Path(path)
    tensors = {name: t.detach().contiguous().cpu() for name, t in state_dict.items()}
    sealed = dataclasses.replace(metadata, content_sha256=content_digest(tensors, metadata))
    payload = save_safetensors(tensors, metadata={_METADATA_KEY: sealed.to_json()})
    write_atomically(path, payload)
    return sealed


def read_metadata(path: str | Path) -> ModelMetadata:
    """Read only the metadata (no integrity check of the weights; use for listings)."""
    path = Path(path)
    try:
        with open(path, "rb") as stream:
            (length,) = struct.unpack("<Q", stream.read(8))
            header = json.loads(stream.read(length))
    except (OSError, struct.error, ValueError) as exc:
        raise ModelFileError(f"{path} is not a readable SkinStation model file: {exc}") from exc
    return _metadata_from_header(path, header)


def _metadata_from_header(path: Path, header: dict[str, Any]) -> ModelMetadata:
    raw = (header.get("__metadata__") or {}).get(_METADATA_KEY)
    if raw is None:
        raise ModelFileError(f"{path} has no SkinStation metadata: not a SkinStation model file")
    metadata = ModelMetadata.from_json(raw)
    if metadata.format != FORMAT:
        raise ModelFileError(f"{path} has format {metadata.format!r}; this build reads {FORMAT}")
    return metadata


def load_model_file(path: str | Path) -> tuple[ModelMetadata, dict[str, torch.Tensor]]:
    """Load and verify a model file.

    Args:
        path: The ``.safetensors`` model file.

    Returns:
        The metadata and the state dict.

    Raises:
        ModelFileError: Missing, truncated or foreign file.
        ModelIntegrityError: Contents differ from the recorded sha256.
    """
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ModelFileError(f"cannot read model file {path}: {exc.strerror or exc}") from exc
    try:
        (length,) = struct.unpack("<Q", data[:8])
        header = json.loads(data[8 : 8 + length])
        tensors = load_safetensors(data)
    except (struct.error, ValueError, SafetensorError) as exc:
        raise ModelFileError(
            f"model file {path} is truncated or corrupt ({len(data)} bytes): {exc}"
        ) from exc
    metadata = _metadata_from_header(path, header)
    actual = content_digest(tensors, metadata)
    if actual != metadata.content_sha256:
        raise ModelIntegrityError(
            f"model file {path} failed its integrity check: content sha256 {actual[:16]}… "
            f"does not match the recorded {metadata.content_sha256[:16]}… (tampered or damaged)"
        )
    return metadata, tensors


def file_sha256(path: str | Path) -> str:
    """sha256 of the file's bytes (what signed manifests refer to)."""
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        for chunk in iter(lambda: stream.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()
