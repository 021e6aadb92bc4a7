"""The engine's settings section (``[engine]`` in ``settings.toml``)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


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
        case_validation_share: Share of the reviewed cases' patients (whole patients, chosen
            by a hash of the patient key, so the same ones every job) held out of training
            and added to the validation pool that keeps the best epoch and fits the operating
            points; only when at least ``MIN_PATIENTS_TO_HOLD_OUT`` patients have cases. 0
            trains on every case.
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
    case_validation_share: float = 0.2
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

    def __post_init__(self) -> None:
        # said when the settings are read, not when a job has loaded its data hours later
        if not 0 <= self.case_validation_share < 1:
            raise ValueError("engine.case_validation_share must be in [0, 1) (0 trains on "
                             f"every reviewed case), got {self.case_validation_share}")
