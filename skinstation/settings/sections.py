"""The station's settings sections: capture quality, login policy, camera, sync, interop.

Each is a frozen dataclass that :class:`skinstation.settings.Settings` holds as one field and
that ``settings.toml`` sets as one table (``[quality]``, ``[auth]``, ...).
"""

from __future__ import annotations

from dataclasses import dataclass


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
