"""Pulling from the engine: dermatologist reviews, and signed model updates.

Reviews are requested from a little before the last one received (so one committed late on the
engine is not skipped) and kept once each (:meth:`SyncRecords.record_engine_review`).

A model update is installed only if its manifest is signed by the engine key pinned at
enrollment, is a newer deployment than the installed one, and the downloaded file has the
manifest's size and sha256; then the injected installer (the station's ``ModelManager.install``)
verifies, loads and switches to it atomically. Anything else is refused, reported to the engine
and to the sync status, and the current model stays in use.

A manifest that fails verification (forged, wrong key, stale) is refused for good: the same
bytes would fail again, so it is not looked at until the engine publishes a different one. A
file that fails its check or does not load (corrupted on the way or in the engine's storage)
may be repaired on the engine without a new deployment, so it is downloaded again after
:data:`RETRY_FIRST_SECONDS`, doubling up to :data:`RETRY_MAX_SECONDS`, for at most
``sync.model_max_attempts`` attempts; every attempt is reported, and so is giving up.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import NoReturn

from skinstation.core.timeutil import Clock, as_utc
from skinstation.protocol.manifest import ManifestError, verify_manifest
from skinstation.protocol.messages import StationEventKind
from skinstation.storage import NotFoundError, ReceivedReview, SyncRecords
from skinstation.sync.client import EngineClient, EngineRejectedError, SyncError
from skinstation.sync.credentials import StationCredential

log = logging.getLogger(__name__)

REVIEW_OVERLAP = 50
INSTALLED_DEPLOYMENT = "model.deployment"
INSTALLED_VERSION = "model.version"
REFUSED_DEPLOYMENT = "model.refused"
RETRY_FIRST_SECONDS = 60.0
RETRY_MAX_SECONDS = 3600.0
_LONG_AGO = datetime(2000, 1, 1, tzinfo=UTC)

ModelInstaller = Callable[[Path, str], str]
"""Verify, load and switch to a model file given its signed sha256; returns its version."""


class ModelRefusedError(SyncError):
    """A model update was refused; the current model stays in use."""


def pull_reviews(records: SyncRecords, client: EngineClient, batch: int = 500) -> int:
    """Receive new engine reviews; returns how many were new."""
    after = max(0, records.last_engine_review_id() - REVIEW_OVERLAP)
    received = 0
    while True:
        rows = client.reviews(after, limit=batch)
        for row in rows:
            review = ReceivedReview(
                engine_review_id=row.review_id, capture_uid=row.capture_uid,
                code=row.code, note=row.note, reviewer_username=row.reviewer,
                reviewer_name=row.reviewer_name, reviewed_at=row.reviewed_at,
                supersedes_engine_review_id=row.supersedes_id,
            )
            try:
                if records.record_engine_review(review) is not None:
                    received += 1
            except NotFoundError as error:
                log.error("engine review %s: %s", review.engine_review_id, error)
        if len(rows) < batch:
            return received
        after = rows[-1].review_id


def installed_deployment(records: SyncRecords) -> int:
    """The deployment number of the installed engine model (0: none yet)."""
    return int(records.get(INSTALLED_DEPLOYMENT) or 0)


@dataclass(frozen=True)
class Refusal:
    """What the station remembers of a refused deployment (``model.refused`` in sync state).

    Attributes:
        marker: The deployment number and signature it concerns.
        reason: The message shown and reported.
        attempts: Failed downloads or installs of it so far.
        retry_at: When it may be downloaded again; ``None``: never (until another deployment).
    """

    marker: str
    reason: str
    attempts: int
    retry_at: datetime | None

    def to_json(self) -> str:
        """The stored form."""
        retry_at = None if self.retry_at is None else self.retry_at.isoformat()
        return json.dumps({"marker": self.marker, "reason": self.reason,
                           "attempts": self.attempts, "retry_at": retry_at})

    @classmethod
    def load(cls, records: SyncRecords) -> Refusal | None:
        """The stored refusal (``None``: none, or an unreadable record, which is dropped).

        A record from before retries were kept (no ``retry_at``) may be retried at once: it
        may be a corrupted download that the old code refused for good.
        """
        raw = records.get(REFUSED_DEPLOYMENT)
        if not raw:
            return None
        try:
            stored = json.loads(raw)
            retry_at = stored.get("retry_at", _LONG_AGO.isoformat())
            return cls(marker=str(stored["marker"]), reason=str(stored["reason"]),
                       attempts=int(stored.get("attempts", 1)),
                       retry_at=None if retry_at is None else as_utc(
                           datetime.fromisoformat(retry_at)))
        except (ValueError, TypeError, KeyError, AttributeError) as error:
            log.warning("ignoring an unreadable %s record: %s", REFUSED_DEPLOYMENT, error)
            return None


def retry_delay(attempts: int) -> timedelta:
    """Wait after ``attempts`` failed downloads of a deployment: 60 s doubling, at most 1 h."""
    return timedelta(seconds=min(RETRY_MAX_SECONDS,
                                 RETRY_FIRST_SECONDS * 2.0 ** max(0, attempts - 1)))


def pull_model(records: SyncRecords, client: EngineClient, credential: StationCredential,
               installer: ModelInstaller, download_dir: Path, *,
               max_attempts: int | None = None, clock: Clock | None = None) -> str | None:
    """Install the engine's current model if it is new; returns its version, else ``None``.

    Args:
        records: The station's sync records (the refusal and installed model live there).
        client: The engine client.
        credential: The enrolled credential (its pinned engine key verifies manifests).
        installer: Verifies, loads and switches to a downloaded file.
        download_dir: Where the file is downloaded to (removed after installing).
        max_attempts: Attempts per deployment whose file fails (``client.settings``'
            ``model_max_attempts`` if None).
        clock: Source of "now" for the retry schedule (``records.clock`` if None).

    Raises:
        ModelRefusedError: Bad signature, wrong key, stale deployment, or a file that does not
            match the manifest or does not load (also while waiting to retry it, or after
            giving up on it). The old model stays in use.
    """
    signed = client.current_manifest()
    if signed is None:
        return None
    manifest, signature = signed.manifest, signed.signature
    installed = installed_deployment(records)
    deployment = manifest.get("deployment")
    if deployment == installed:
        return None
    now = (clock or records.clock)()
    limit = max_attempts if max_attempts is not None else client.settings.model_max_attempts
    marker = json.dumps({"deployment": deployment, "signature": signature})
    refused = Refusal.load(records)
    if refused is not None and refused.marker != marker:
        refused = None
    if refused is not None and (refused.retry_at is None or now < refused.retry_at):
        raise ModelRefusedError(refused.reason)
    attempts = 0 if refused is None else refused.attempts
    version = str(manifest.get("version", "?"))
    prefix = f"model {version} (deployment {deployment}) refused: "
    try:
        verified = verify_manifest(manifest, signature, credential.public_key,
                                   newer_than=installed)
    except ManifestError as error:
        _refuse(records, client, Refusal(marker, f"{prefix}{error}", attempts + 1, None),
                version, deployment)
    target = download_dir / f"{verified.version}.safetensors"
    try:
        client.download_model(verified.version, target, expected_size=verified.file_size,
                              expected_sha256=verified.file_sha256)
        try:
            installed_version = installer(target, verified.file_sha256)
        finally:
            target.unlink(missing_ok=True)
    except (EngineRejectedError, ValueError) as error:
        attempts += 1
        if attempts >= limit:
            reason = (f"{prefix}{error} (attempt {attempts} of {limit}; given up until the "
                      "engine publishes another deployment)")
            retry_at = None
        else:
            retry_at = now + retry_delay(attempts)
            reason = (f"{prefix}{error} (attempt {attempts} of {limit}; next attempt after "
                      f"{retry_at.isoformat(timespec='seconds')})")
        _refuse(records, client, Refusal(marker, reason, attempts, retry_at), version,
                deployment)
    records.put(INSTALLED_DEPLOYMENT, str(verified.deployment))
    records.put(INSTALLED_VERSION, installed_version)
    records.put(REFUSED_DEPLOYMENT, "")
    _report(client, "model_installed", installed_version, verified.deployment, "")
    return installed_version


def _refuse(records: SyncRecords, client: EngineClient, refusal: Refusal, version: str,
            deployment: object) -> NoReturn:
    """Remember and report a refusal, then raise it."""
    records.put(REFUSED_DEPLOYMENT, refusal.to_json())
    _report(client, "model_refused", version, deployment, refusal.reason)
    raise ModelRefusedError(refusal.reason) from None


def _report(client: EngineClient, kind: StationEventKind, version: str, deployment: object,
            detail: str) -> None:
    try:
        client.report_event(kind, version=version[:64],
                            deployment=deployment if isinstance(deployment, int) else None,
                            detail=detail)
    except SyncError as error:  # the report is best effort; the status shows the refusal
        log.warning("could not report %s to the engine: %s", kind, error)
