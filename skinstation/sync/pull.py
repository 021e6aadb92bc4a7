"""Pulling from the engine: dermatologist reviews, and signed model updates.

Reviews are requested from a little before the last one received (so one committed late on the
engine is not skipped) and kept once each (:meth:`SyncRecords.record_engine_review`).

A model update is installed only if its manifest is signed by the engine key pinned at
enrollment, is a newer deployment than the installed one, and the downloaded file has the
manifest's size and sha256; then the injected installer (the station's ``ModelManager.install``)
verifies, loads and switches to it atomically. Anything else is refused, reported to the engine
and to the sync status, and the current model stays in use. A refused deployment is not
downloaded again until the engine publishes a different one.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from pathlib import Path

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


def pull_model(records: SyncRecords, client: EngineClient, credential: StationCredential,
               installer: ModelInstaller, download_dir: Path) -> str | None:
    """Install the engine's current model if it is new; returns its version, else ``None``.

    Raises:
        ModelRefusedError: Bad signature, wrong key, stale deployment, or a file that does not
            match the manifest or does not load. The old model stays in use.
    """
    signed = client.current_manifest()
    if signed is None:
        return None
    manifest, signature = signed.manifest, signed.signature
    installed = installed_deployment(records)
    deployment = manifest.get("deployment")
    if deployment == installed:
        return None
    marker = json.dumps({"deployment": deployment, "signature": signature})
    refused = records.get(REFUSED_DEPLOYMENT)
    if refused is not None and json.loads(refused)["marker"] == marker:
        raise ModelRefusedError(json.loads(refused)["reason"])
    version = str(manifest.get("version", "?"))
    try:
        verified = verify_manifest(manifest, signature, credential.public_key,
                                   newer_than=installed)
        target = download_dir / f"{verified.version}.safetensors"
        client.download_model(verified.version, target, expected_size=verified.file_size,
                              expected_sha256=verified.file_sha256)
        try:
            installed_version = installer(target, verified.file_sha256)
        finally:
            target.unlink(missing_ok=True)
    except (ManifestError, EngineRejectedError, ValueError) as error:
        reason = f"model {version} (deployment {deployment}) refused: {error}"
        records.put(REFUSED_DEPLOYMENT, json.dumps({"marker": marker, "reason": reason}))
        _report(client, "model_refused", version, deployment, reason)
        raise ModelRefusedError(reason) from None
    records.put(INSTALLED_DEPLOYMENT, str(verified.deployment))
    records.put(INSTALLED_VERSION, installed_version)
    _report(client, "model_installed", installed_version, verified.deployment, "")
    return installed_version


def _report(client: EngineClient, kind: StationEventKind, version: str, deployment: object,
            detail: str) -> None:
    try:
        client.report_event(kind, version=version[:64],
                            deployment=deployment if isinstance(deployment, int) else None,
                            detail=detail)
    except SyncError as error:  # the report is best effort; the status shows the refusal
        log.warning("could not report %s to the engine: %s", kind, error)
