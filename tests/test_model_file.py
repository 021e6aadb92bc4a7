import dataclasses
import json
import struct

import numpy as np
import pytest
import torch

from skinstation.inference.classifier import Classifier
from skinstation.inference.model_file import (
    ModelFileError,
    ModelIntegrityError,
    load_model_file,
    read_metadata,
    save_model_file,
)


def test_round_trip_gives_identical_outputs(tiny_model, tmp_path, real_image_path):
    from skinstation.inference.preprocessing import decode_image

    metadata, state = load_model_file(tiny_model)
    copy = save_model_file(tmp_path / "copy.safetensors", state, metadata)
    assert copy.content_sha256 == metadata.content_sha256
    image = decode_image(real_image_path)
    first = Classifier.load(tiny_model).classify(image)
    second = Classifier.load(tmp_path / "copy.safetensors").classify(image)
    assert first.class_probs == second.class_probs
    assert first.decision == second.decision
    assert sum(first.class_probs.values()) == pytest.approx(1.0, abs=1e-9)


def test_metadata_travels_with_the_weights(tiny_model):
    metadata = read_metadata(tiny_model)
    assert metadata.model_version == "tiny-test-model"
    assert metadata.architecture == "mobilenet_v2"
    assert metadata.classes == ["akiec", "bcc", "bkl", "df", "mel", "nv", "vasc"]
    assert metadata.preprocess["size"] == 224 and metadata.preprocess["hair_removal"] is True
    assert metadata.temperature > 0
    assert 0 <= metadata.referral["threshold"] <= 1
    assert metadata.assessability["method"] == "subspace"
    assert metadata.data_fingerprint and metadata.created_at.endswith("+00:00")
    assert "test" in metadata.metrics
    assert len(metadata.content_sha256) == 64


def _header_end(data: bytes) -> int:
    return 8 + struct.unpack("<Q", data[:8])[0]


def test_tampered_weight_is_rejected(tiny_model, tmp_path):
    data = bytearray(tiny_model.read_bytes())
    data[_header_end(data) + 1000] ^= 0x01
    tampered = tmp_path / "tampered.safetensors"
    tampered.write_bytes(bytes(data))
    with pytest.raises(ModelIntegrityError, match="failed its integrity check"):
        load_model_file(tampered)
    with pytest.raises(ModelIntegrityError):
        Classifier.load(tampered)


def test_tampered_threshold_is_rejected(tiny_model, tmp_path):
    metadata, state = load_model_file(tiny_model)
    lowered = dataclasses.replace(metadata, referral={**metadata.referral, "threshold": 0.99})
    path = tmp_path / "forged.safetensors"
    from safetensors.torch import save_file
    save_file(state, str(path), metadata={"skinstation": lowered.to_json()})
    with pytest.raises(ModelIntegrityError, match="does not match the recorded"):
        load_model_file(path)


def test_truncated_file_is_rejected(tiny_model, tmp_path):
    data = tiny_model.read_bytes()
    truncated = tmp_path / "truncated.safetensors"
    truncated.write_bytes(data[: len(data) // 2])
    with pytest.raises(ModelFileError, match="truncated or corrupt"):
        load_model_file(truncated)
    (tmp_path / "empty.safetensors").write_bytes(b"")
    with pytest.raises(ModelFileError, match="truncated or corrupt"):
        load_model_file(tmp_path / "empty.safetensors")
    with pytest.raises(ModelFileError, match="cannot read model file"):
        load_model_file(tmp_path / "absent.safetensors")


def test_foreign_safetensors_file_is_rejected(tmp_path):
    from safetensors.torch import save_file
    path = tmp_path / "foreign.safetensors"
    save_file({"w": torch.zeros(3)}, str(path))
    with pytest.raises(ModelFileError, match="no SkinStation metadata"):
        load_model_file(path)


def test_pickle_files_are_never_loaded(tmp_path):
    path = tmp_path / "model.pt"
    torch.save({"w": torch.zeros(3)}, path)  # a pickle: must not be accepted at all
    with pytest.raises(ModelFileError):
        load_model_file(path)


def test_save_is_atomic(tiny_model, tmp_path, monkeypatch):
    metadata, state = load_model_file(tiny_model)
    target = tmp_path / "model.safetensors"
    save_model_file(target, state, metadata)
    before = target.read_bytes()

    def fail(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr("os.fsync", fail)
    with pytest.raises(OSError, match="disk full"):
        save_model_file(target, state, dataclasses.replace(metadata, model_version="other"))
    assert target.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["model.safetensors"]


def test_header_is_plain_json(tiny_model):
    data = tiny_model.read_bytes()
    header = json.loads(data[8:_header_end(data)])
    stored = json.loads(header["__metadata__"]["skinstation"])
    assert stored["format"] == "skinstation-model/1"
    assert np.isfinite(stored["temperature"])
