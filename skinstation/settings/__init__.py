"""The one settings object shared by the station, the engine, training and the CLI.

Values come, in increasing priority, from the defaults below, an optional TOML file
(``SKINSTATION_CONFIG`` or ``<home>/settings.toml``) and ``SKINSTATION_*`` environment
variables. Secrets never live here: station credentials go to the OS keyring.

Example TOML::

    data_dir = "../shared/data"
    database_url = "sqlite:////var/lib/skinstation/station.db"

    [quality]
    min_focus = 5.0
"""

from __future__ import annotations

import dataclasses
import os
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from skinstation.resources import DEFAULT_MODEL_PATH
from skinstation.settings.engine import EngineSettings
from skinstation.settings.sections import (
    DICOM_IMMERSION_MEDIA,
    MAX_FIELD_OF_VIEW_MM,
    AuthSettings,
    CameraSettings,
    InteropSettings,
    QualitySettings,
    SyncSettings,
)

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

__all__ = [
    "DEFAULT_PSEUDONYM_PATTERN", "DICOM_IMMERSION_MEDIA", "MAX_FIELD_OF_VIEW_MM",
    "AuthSettings", "CameraSettings", "EngineSettings", "InteropSettings", "QualitySettings",
    "Settings", "SyncSettings",
]

_Section = TypeVar("_Section", bound="DataclassInstance")

DEFAULT_PSEUDONYM_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"
"""A pseudonym by default: letters A-Z, digits, '.', '_' or '-', starting with a letter or digit."""


@dataclass(frozen=True)
class Settings:
    """Everything configurable in SkinStation, in one typed object.

    Attributes:
        home: Folder for the station's database, images, caches and received models.
        data_dir: Root of the labelled image data (e.g. ``../shared/data``); ``None`` if unset.
        database_url: SQLAlchemy URL of the local database; SQLite in ``home`` by default.
        model_path: Model file the station classifies with.
        station_id: This station's identifier, stored with every capture.
        language: UI and guidance language (``en`` or ``ko``).
        torch_threads: Threads PyTorch may use for inference. One by default: on a 2-core
            station a second thread saves ~3 ms idle but, whenever anything else runs (the GUI,
            the camera), its thread barriers stall and a capture took 0.4–5 s (issue 19).
        idle_lock_minutes: The UI locks after this long without input.
        target_referral_sensitivity: Skin-cancer sensitivity the referral threshold is fitted to.
        store_patient_names: Keep patients' names in the station database (off: pseudonyms only).
        pseudonym_pattern: Regular expression a patient's pseudonymous ID must match in full
            (besides the fixed rules: at most 64 characters, no spaces, nothing like a date
            of birth or a name; see :mod:`skinstation.core.pseudonyms`).
        retention_years: Captures taken longer ago than this many years are erased (images,
            labels, predictions; the engine is told on sync), checked at start-up and once a
            day by the sync thread; 0 keeps them forever.
        encrypt_at_rest: Keep capture images and patients' pseudonyms, names and label notes
            encrypted with the station's data keys (in the keyring). Turn off only where the
            disk is encrypted otherwise: off, anyone with a copy of the database, the images
            or a backup reads them.
        visit_max_open_hours: A visit still open this many hours after it was opened is
            closed automatically the next time the station uses it (a capture then goes to a
            new visit of the same patient); 0 never closes visits automatically.
        report_font: TrueType font file (.ttf/.ttc) the referral-report PDF embeds; it must
            cover Hangul for a Korean report. Empty: NanumGothic, Noto Sans KR/CJK or Malgun
            Gothic is looked for in the usual system font folders.
    """

    home: Path = field(default_factory=lambda: Path.home() / ".local/share/skinstation")
    data_dir: Path | None = None
    database_url: str = ""
    model_path: Path = DEFAULT_MODEL_PATH
    station_id: str = "station-1"
    language: str = "en"
    torch_threads: int = 1
    idle_lock_minutes: float = 5.0
    target_referral_sensitivity: float = 0.95
    store_patient_names: bool = False
    pseudonym_pattern: str = DEFAULT_PSEUDONYM_PATTERN
    retention_years: int = 0
    encrypt_at_rest: bool = True
    visit_max_open_hours: float = 12.0
    report_font: str = ""
    quality: QualitySettings = field(default_factory=QualitySettings)
    auth: AuthSettings = field(default_factory=AuthSettings)
    camera: CameraSettings = field(default_factory=CameraSettings)
    sync: SyncSettings = field(default_factory=SyncSettings)
    engine: EngineSettings = field(default_factory=EngineSettings)
    interop: InteropSettings = field(default_factory=InteropSettings)

    def __post_init__(self) -> None:
        if not self.database_url:
            object.__setattr__(self, "database_url", f"sqlite:///{self.home / 'station.db'}")
        if self.retention_years < 0 or self.engine.retention_years < 0:
            raise ValueError("retention_years and engine.retention_years must be >= 0 "
                             "(0 keeps captures forever)")
        try:
            re.compile(self.pseudonym_pattern)
        except re.error as error:
            raise ValueError(f"pseudonym_pattern is not a valid regular expression: {error}"
                             ) from None

    @property
    def images_dir(self) -> Path:
        """Content-addressed store of captured images."""
        return self.home / "images"

    @property
    def cache_dir(self) -> Path:
        """Recomputable caches (backbone features, thumbnails)."""
        return self.home / "cache"

    @classmethod
    def load(
        cls,
        env: Mapping[str, str] | None = None,
        config_file: Path | None = None,
        **overrides: Any,
    ) -> Settings:
        """Build settings from defaults, a TOML file, the environment and explicit overrides.

        Args:
            env: Environment to read ``SKINSTATION_*`` variables from (``os.environ`` if None).
            config_file: TOML file; defaults to ``SKINSTATION_CONFIG`` or ``<home>/settings.toml``.
            **overrides: Top-level fields that win over everything else.

        Returns:
            The settings.

        Raises:
            ValueError: On an unknown key or a value of the wrong type.
        """
        env = os.environ if env is None else env
        values: dict[str, Any] = {}
        home = Path(env["SKINSTATION_HOME"]) if env.get("SKINSTATION_HOME") else None
        if config_file is None and env.get("SKINSTATION_CONFIG"):
            config_file = Path(env["SKINSTATION_CONFIG"])
        if config_file is None:
            candidate = (home or cls().home) / "settings.toml"
            config_file = candidate if candidate.is_file() else None
        if config_file is not None:
            with open(config_file, "rb") as handle:
                values.update(tomllib.load(handle))
        for name in ("home", "data_dir", "database_url", "model_path", "station_id", "language"):
            key = f"SKINSTATION_{name.upper()}"
            if env.get(key):
                values[name] = env[key]
        values.update(overrides)
        return _build(cls, values)

    def replace(self, **changes: Any) -> Settings:
        """Return a copy with some fields changed (sections may be given as dicts)."""
        current = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        if "home" in changes and "database_url" not in changes:
            current["database_url"] = ""
        current.update(changes)
        return _build(Settings, current)


def _build(kind: type[_Section], values: Mapping[str, Any]) -> _Section:
    """Instantiate dataclass ``kind`` from a mapping, converting paths, tuples and sections."""
    fields = {f.name: f for f in dataclasses.fields(kind)}
    unknown = set(values) - set(fields)
    if unknown:
        raise ValueError(f"unknown setting(s) for {kind.__name__}: {', '.join(sorted(unknown))}")
    kwargs: dict[str, Any] = {}
    for name, value in values.items():
        spec = fields[name]
        default = spec.default
        if default is dataclasses.MISSING and spec.default_factory is not dataclasses.MISSING:
            default = spec.default_factory()
        if (dataclasses.is_dataclass(default) and not isinstance(default, type)
                and isinstance(value, Mapping)):
            value = _build(type(default), value)
        elif isinstance(default, Path) or name in ("home", "data_dir", "model_path"):
            value = Path(value).expanduser() if value not in (None, "") else None
        elif isinstance(default, tuple) and isinstance(value, list):
            value = tuple(value)
        elif isinstance(default, tuple):
            raise ValueError(f"setting {name} of {kind.__name__} must be a list, got "
                             f"{value!r}")
        elif isinstance(default, bool) and not isinstance(value, bool):
            value = str(value).lower() in ("1", "true", "yes", "on")
        elif isinstance(default, (int, float)) and not isinstance(default, bool):
            value = type(default)(value)
        kwargs[name] = value
    return kind(**kwargs)
