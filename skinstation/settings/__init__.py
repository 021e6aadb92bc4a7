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

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

_Section = TypeVar("_Section", bound="DataclassInstance")

DEFAULT_PSEUDONYM_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"
"""A pseudonym by default: letters A-Z, digits, '.', '_' or '-', starting with a letter or digit."""


@dataclass(frozen=True)
class QualitySettings:
    """Thresholds of the capture-quality checks run before classification.

    Measured on a copy with a 200-pixel long side (see ``skinstation.inference.quality``) and
    calibrated on HAM10000 (96.9% of its 10,015 images pass; ``bench/calibrate_quality.py``).
    """

    min_focus: float = 4.0
    min_brightness: float = 60.0
    max_brightness: float = 230.0
    max_clipped_fraction: float = 0.5
    max_glare_fraction: float = 0.05
    min_lesion_contrast: float = 5.0
    min_lesion_fraction: float = 0.01
    max_lesion_border_fraction: float = 0.55


@dataclass(frozen=True)
class AuthSettings:
    """Operator login policy.

    Attributes:
        max_failed_logins: Consecutive wrong passwords that lock an account.
        lockout_minutes: How long a locked account refuses logins.
        session_timeout_minutes: Inactivity after which a login session ends.
        min_password_length: Shortest password accepted (at least 8).
        throttle_failures: Failed logins of one username (known or not) within
            ``throttle_minutes`` after which further tries of that username must wait until
            the oldest failure leaves the window (in memory, per process).
        throttle_minutes: The sliding window of the login throttles (station and engine).
    """

    max_failed_logins: int = 5
    lockout_minutes: float = 15.0
    session_timeout_minutes: float = 15.0
    min_password_length: int = 10
    throttle_failures: int = 10
    throttle_minutes: float = 15.0

    def __post_init__(self) -> None:
        if self.max_failed_logins < 1:
            raise ValueError(f"auth.max_failed_logins must be >= 1, got {self.max_failed_logins}")
        if self.lockout_minutes <= 0 or self.session_timeout_minutes <= 0:
            raise ValueError("auth.lockout_minutes and auth.session_timeout_minutes must be > 0")
        if self.min_password_length < 8:
            raise ValueError(
                f"auth.min_password_length must be >= 8, got {self.min_password_length}"
            )
        if self.throttle_failures < 1 or self.throttle_minutes <= 0:
            raise ValueError("auth.throttle_failures must be >= 1 and auth.throttle_minutes > 0")


MAX_FIELD_OF_VIEW_MM = 200.0
"""Widest plausible dermatoscope field of view (``camera.field_of_view_mm``), in mm."""


@dataclass(frozen=True)
class CameraSettings:
    """Which frame source and light the station opens, and how.

    ``source``: ``auto`` (first camera, else the simulator, else synthetic frames),
    ``simulator``, ``synthetic``, a camera index (``0``) or a path (``/dev/video2``, or a
    folder/video to replay). ``simulator_folder``: images or a video for the simulator.
    ``illuminator_port``: serial port of the LED controller, ``simulator`` for a simulated
    one, or empty for a manually set light. ``field_of_view_mm``: width of the dermatoscope's
    field of view in mm (a contact dermatoscope's is fixed, e.g. 25), stored with each capture
    as its pixel size so lesion sizes read in mm; None (not set) when not known.
    """

    source: str = "auto"
    simulator_folder: str = ""
    simulator_fps: float = 15.0
    width: int = 1280
    height: int = 960
    exposure: float | None = None
    stale_frames: int = 2
    band_settle_seconds: float = 0.15
    illuminator_port: str = ""
    illuminator_baudrate: int = 115200
    illuminator_timeout_seconds: float = 1.0
    bands: tuple[str, ...] = (
        "white",
        "cross_polarised",
        "uv_365",
        "violet_405",
        "amber_590",
        "red_660",
        "nir_850",
    )
    field_of_view_mm: float | None = None

    def __post_init__(self) -> None:
        fov = self.field_of_view_mm
        if fov is None:
            return
        if isinstance(fov, bool) or not isinstance(fov, int | float) or not (
                0 < fov <= MAX_FIELD_OF_VIEW_MM):
            raise ValueError(
                "camera.field_of_view_mm must be the dermatoscope's field-of-view width in mm, "
                f"above 0 and at most {MAX_FIELD_OF_VIEW_MM:g} (e.g. 25), or not set when not "
                f"known; got {fov!r}")
        object.__setattr__(self, "field_of_view_mm", float(fov))


@dataclass(frozen=True)
class SyncSettings:
    """Where and how the station syncs to the central engine.

    ``settle_seconds``: a capture is uploaded once it is this old, so the prediction and
    label saved right after it travel with it. ``timeout_seconds``, ``retries`` and
    ``backoff_seconds`` shape each request (urllib3 ``Retry``) and the wait after a failed
    round (doubling up to ``interval_seconds``). ``model_max_attempts``: downloads of one
    deployment whose file fails its check (retried after 60 s, doubling up to an hour) before
    the station gives up on it until the engine publishes another. ``max_server_errors``:
    server errors (5xx) one capture may get, while the engine takes others, before it is set
    aside as refused (an administrator retries it after a fix).
    """

    engine_url: str = ""
    verify_tls: bool = True
    ca_bundle: str = ""
    interval_seconds: float = 60.0
    send_patient_names: bool = False
    settle_seconds: float = 5.0
    timeout_seconds: float = 30.0
    retries: int = 3
    backoff_seconds: float = 0.5
    batch_size: int = 50
    model_max_attempts: int = 5
    max_server_errors: int = 5

    def __post_init__(self) -> None:
        if self.model_max_attempts < 1:
            raise ValueError(
                f"sync.model_max_attempts must be >= 1, got {self.model_max_attempts}")
        if self.max_server_errors < 1:
            raise ValueError(
                f"sync.max_server_errors must be >= 1, got {self.max_server_errors}")


DICOM_IMMERSION_MEDIA = ("ULTRASOUND_GEL", "ALCOHOL", "WATER", "MINERAL_OIL", "PLASTIC_CAP")
"""Enumerated Values of DICOM Immersion Media (0016,1004); sources in interop/dicom_standard."""


@dataclass(frozen=True)
class InteropSettings:
    """Exports of captures to hospital systems: DICOM files, a PACS, a FHIR server.

    Attributes:
        fhir_url: Base URL of the FHIR (R4) server a report bundle is POSTed to ("": none).
        fhir_timeout_seconds: Timeout of that POST.
        pacs_host, pacs_port, pacs_ae_title: The PACS (a DICOM C-STORE SCP) exports go to
            (an empty host: none).
        station_ae_title: This station's own AE title when it sends to the PACS.
        send_patient_names: Put the patient's name (when the station stores one) into
            exports; off, the patient is identified by the pseudonym only.
        contact_method: How the dermatoscope meets the skin (DICOM Contact Method):
            ``CONTACT`` or ``NON_CONTACT``.
        immersion_media: With ``CONTACT``: the immersion media used (DICOM Immersion Media,
            one or more of :data:`DICOM_IMMERSION_MEDIA`, e.g. ``["ULTRASOUND_GEL"]``;
            required then).
        optical_magnification: The dermatoscope's optical magnification (0: not known).
    """

    fhir_url: str = ""
    fhir_timeout_seconds: float = 30.0
    pacs_host: str = ""
    pacs_port: int = 104
    pacs_ae_title: str = "PACS"
    station_ae_title: str = "SKINSTATION"
    send_patient_names: bool = False
    contact_method: str = "NON_CONTACT"
    immersion_media: tuple[str, ...] = ()
    optical_magnification: float = 10.0

    def __post_init__(self) -> None:
        if self.contact_method not in ("CONTACT", "NON_CONTACT"):
            raise ValueError("interop.contact_method must be CONTACT or NON_CONTACT, got "
                             f"{self.contact_method!r}")
        if self.contact_method == "CONTACT" and not self.immersion_media:
            raise ValueError("interop.immersion_media is required with contact_method CONTACT")
        unknown = [m for m in self.immersion_media if m not in DICOM_IMMERSION_MEDIA]
        if unknown:
            raise ValueError(f"interop.immersion_media {', '.join(unknown)} not DICOM Immersion "
                             f"Media values; use {', '.join(DICOM_IMMERSION_MEDIA)}")
        for title in (self.pacs_ae_title, self.station_ae_title):
            if not 0 < len(title.strip()) <= 16:
                raise ValueError(f"an AE title has 1 to 16 characters, got {title!r}")


@dataclass(frozen=True)
class EngineSettings:
    """The central engine: its home, database, retraining gate and limits.

    Attributes:
        home: Engine folder (default ``<home>/engine``): signing key, logs, job folders.
        database_url: SQLAlchemy URL (default SQLite in ``home``); PostgreSQL for scale-out.
        storage_dir: Image and model files (default ``<engine home>/storage``); shared
            storage when several API nodes serve one engine.
        base_source: Base training data spec, e.g. ``ham10000:ham10000`` (relative to
            ``data_dir``).
        locked_split: Split file of the base data; its ``test`` part is the locked test set
            every candidate is judged on and that retraining never trains on.
        max_balanced_accuracy_drop: Promotion gate: how much lower the candidate's balanced
            accuracy on the locked test set may be than the current model's.
        max_sensitivity_drop: Promotion gate: the same for skin-cancer referral sensitivity.
        min_reviewed_cases: Retraining needs at least this many expert-reviewed cases.
        other_sources: Other clinics' data, ``SPEC=SPLIT`` each (relative to ``data_dir``
            and the project): trained on beside the base data, and its test part is a second
            locked test set (``other-clinics``) the gate checks.
        warm_start: Retrain from the deployed model's weights (whole network, replaying base
            data), not from ImageNet.
        full_epochs, full_lr: Whole-network fine-tuning epochs and peak learning rate of a
            warm-started retraining.
        base_visits, case_visits: Expected visits per epoch of each base image (replay) and
            of each expert-confirmed case.
        train_views, head_epochs, finetune_epochs, batch_size, train_threads: Retraining
            hyper-parameters (see ``TrainConfig``; the first four only without warm start).
        train_processes: 1 trains inside the worker; N > 1 trains with PyTorch DDP under
            ``torchrun --nproc_per_node=N`` (gloo on CPU).
        job_lease_seconds: A running job whose worker has not reported for this long is
            requeued (its worker died).
        max_job_attempts: A job that lost its worker this many times fails.
        max_image_bytes: Largest capture image accepted.
        max_metadata_bytes: Largest capture metadata document accepted.
        enrollment_code_hours: Lifetime of a one-time enrollment code.
        session_hours: Lifetime of a dermatologist/admin API login.
        accept_patient_names: Accept patient names from stations (off: pseudonyms only).
        login_failures_per_address: Failed logins from one client address (an IPv6 /64)
            within ``auth.throttle_minutes`` after which its logins get 429 (per process).
        login_threads: Threads hashing login passwords (0: one per 4 cores, at least 1).
        login_queue: Logins that may wait for a hashing thread; beyond that 503.
        retention_years: Captures taken longer ago than this many years are erased (with
            their predictions, reviews and image files) by the worker once a day; 0 keeps
            them forever.
        encrypt_at_rest: Keep capture images and patients' pseudonyms, names and notes
            encrypted with the engine's data keys (in the keyring). Turn off only where the
            storage is encrypted otherwise: off, anyone with a copy of the database, the
            storage or a backup reads them.
    """

    home: Path | None = None
    database_url: str = ""
    storage_dir: str = ""
    base_source: str = "ham10000:ham10000"
    locked_split: str = "resources/splits/ham10000.csv"
    max_balanced_accuracy_drop: float = 0.01
    max_sensitivity_drop: float = 0.0
    min_reviewed_cases: int = 1
    other_sources: tuple[str, ...] = (
        "isic-archive:isic-archive=resources/splits/isic-archive.csv",)
    warm_start: bool = True
    full_epochs: int = 2
    full_lr: float = 5e-5
    base_visits: float = 0.5
    case_visits: float = 4.0
    train_views: int = 4
    head_epochs: int = 30
    finetune_epochs: int = 6
    batch_size: int = 64
    train_threads: int = 2
    train_processes: int = 1
    job_lease_seconds: float = 900.0
    max_job_attempts: int = 3
    max_image_bytes: int = 20_000_000
    max_metadata_bytes: int = 262_144
    enrollment_code_hours: float = 24.0
    session_hours: float = 8.0
    accept_patient_names: bool = False
    login_failures_per_address: int = 10
    login_threads: int = 0
    login_queue: int = 32
    retention_years: int = 0
    encrypt_at_rest: bool = True


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
