"""Shared fixtures: the real data folder, a few real images, isolated settings."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import keyring
import pytest
from keyring.backend import KeyringBackend
from keyring.errors import PasswordDeleteError

from skinstation.settings import Settings

REPO_ROOT = Path(__file__).resolve().parent.parent

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")


def _data_dir() -> Path:
    configured = os.environ.get("SKINSTATION_TEST_DATA_DIR")
    return Path(configured) if configured else REPO_ROOT.parent / "shared" / "data"


class MemoryKeyring(KeyringBackend):
    """The suite's keyring: entries in a dict, so no test reads or writes a real keyring."""

    priority = 1

    def __init__(self) -> None:
        super().__init__()
        self.entries: dict[tuple[str, str], str] = {}

    def get_password(self, service: str, username: str) -> str | None:
        return self.entries.get((service, username))

    def set_password(self, service: str, username: str, password: str) -> None:
        self.entries[(service, username)] = password

    def delete_password(self, service: str, username: str) -> None:
        if self.entries.pop((service, username), None) is None:
            raise PasswordDeleteError(f"no entry {service}/{username}")


@pytest.fixture(autouse=True)
def memory_keyring(monkeypatch: pytest.MonkeyPatch) -> Iterator[MemoryKeyring]:
    """Every test runs with a fresh in-memory keyring and no keyring settings from outside."""
    for name in ("SKINSTATION_KEYRING_FILE", "SKINSTATION_KEYRING_PASSPHRASE",
                 "SKINSTATION_KEYRING_KEY_FILE", "PYTHON_KEYRING_BACKEND"):
        monkeypatch.delenv(name, raising=False)
    previous = keyring.get_keyring()
    backend = MemoryKeyring()
    keyring.set_keyring(backend)
    yield backend
    keyring.set_keyring(previous)


@pytest.fixture(scope="session")
def data_dir() -> Path:
    """The real data root (``../shared/data``); the suite needs it."""
    path = _data_dir()
    if not (path / "ham10000" / "HAM10000_metadata.csv").is_file():
        pytest.fail(f"real data not found at {path}; set SKINSTATION_TEST_DATA_DIR")
    return path


@pytest.fixture(scope="session")
def ham_dir(data_dir: Path) -> Path:
    return data_dir / "ham10000"


@pytest.fixture(scope="session")
def pad_dir(data_dir: Path) -> Path:
    return data_dir / "pad-ufes-20"


# A fixed handful of real HAM10000 images, one or two per class (ids from the metadata CSV).
REAL_IMAGES = {
    "ISIC_0027419": "bkl",
    "ISIC_0025030": "bkl",
    "ISIC_0024306": "nv",
    "ISIC_0024307": "nv",
}


@pytest.fixture(scope="session")
def real_image_path(ham_dir: Path) -> Path:
    """One real dermoscopic image (a benign keratosis)."""
    return ham_dir / "images" / "ISIC_0027419.jpg"


@pytest.fixture()
def settings(tmp_path: Path, data_dir: Path) -> Settings:
    """Settings with a private home (database, images, caches) under ``tmp_path``."""
    return Settings.load(env={}, home=tmp_path / "home", data_dir=data_dir)


def write_manifest(path: Path, ham_dir: Path, per_class: int, offset: int = 0) -> Path:
    """Write a manifest CSV of ``per_class`` real HAM10000 images per class (absolute paths).

    One image per lesion, so a stratified split gives every split every class.
    """
    import csv

    chosen: dict[str, list[dict[str, str]]] = {}
    lesions: set[str] = set()
    with open(ham_dir / "HAM10000_metadata.csv", newline="") as stream:
        for row in csv.DictReader(stream):
            bucket = chosen.setdefault(row["dx"], [])
            if len(bucket) < per_class + offset and row["lesion_id"] not in lesions:
                lesions.add(row["lesion_id"])
                bucket.append(row)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as stream:
        writer = csv.writer(stream)
        writer.writerow(["image", "dx", "lesion_id"])
        for dx in sorted(chosen):
            for row in chosen[dx][offset:]:
                image = ham_dir / "images" / f"{row['image_id']}.jpg"
                writer.writerow([str(image), dx, row["lesion_id"]])
    return path


@pytest.fixture(scope="session")
def tiny_manifest(tmp_path_factory: pytest.TempPathFactory, ham_dir: Path) -> Path:
    """A manifest of 42 real HAM10000 images, 6 per class."""
    return write_manifest(tmp_path_factory.mktemp("tiny") / "tiny.csv", ham_dir, per_class=6)


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory: pytest.TempPathFactory, tiny_manifest: Path) -> Path:
    """A real (tiny, barely trained) model file built by the project's own pipeline."""
    from skinstation.training.pipeline import BuildRequest, build_model
    from skinstation.training.trainer import TrainConfig

    folder = tmp_path_factory.mktemp("tiny-model")
    config = TrainConfig(views=1, head_epochs=3, finetune_epochs=1, batch_size=16)
    request = BuildRequest(
        source=f"manifest:{tiny_manifest}", split_path=folder / "split.csv",
        output=folder / "tiny.safetensors", config=config, cache_dir=folder / "cache",
        version="tiny-test-model",
    )
    build_model(request, log=lambda message: None)
    return request.output
