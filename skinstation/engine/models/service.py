"""Model versions and deployments: import, register candidates, promote, roll back, manifests.

Every model file the engine knows is copied into ``<storage>/models/<version>.safetensors`` and
recorded with its file sha256, content sha256, the metrics the file claims, the metrics the
engine measured when it gated the model, data fingerprint, parent version, and who or what
created and decided on it (importing a file: :mod:`skinstation.engine.models.imports`).
A *deployment* makes a promoted version the one stations use; each deployment carries a
manifest signed with the engine key and a sequence number. The highest sequence is current;
rolling back is a new deployment of an earlier version.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from skinstation.core.files import write_atomically
from skinstation.core.jsonvalues import finite_json
from skinstation.core.timeutil import utc_now
from skinstation.engine.audit import service as audit
from skinstation.engine.database import EngineDatabase
from skinstation.engine.errors import ConflictError, InvalidError, NotFoundError
from skinstation.engine.models.models import Deployment, ModelStatus, ModelVersion
from skinstation.engine.models.schemas import VersionOut
from skinstation.engine.models.signing import active_public_key, sign_manifest
from skinstation.protocol.manifest import MANIFEST_FORMAT, SignedManifest


def _store_file(db: EngineDatabase, source: Path, version: str) -> tuple[str, str, int]:
    """Copy a model file into storage; return (file ref, file sha256, size)."""
    from skinstation.inference.model_file import file_sha256  # torch: not in API processes

    ref = f"{version}.safetensors"
    target = db.paths.models / ref
    if source.resolve() != target.resolve():
        target.parent.mkdir(parents=True, exist_ok=True)
        write_atomically(target, source.read_bytes())
    return ref, file_sha256(target), target.stat().st_size


def model_path(db: EngineDatabase, version: str) -> Path:
    """Where a version's file is stored."""
    with db.transaction() as session:
        row = _version(session, version)
    return db.paths.models / row.file_ref


def register_model(
    db: EngineDatabase,
    path: Path,
    *,
    status: ModelStatus,
    actor: str,
    gate_metrics: dict[str, Any] | None = None,
    report: dict[str, Any] | None = None,
    job_id: int | None = None,
) -> VersionOut:
    """Copy a verified model file into storage and record its version.

    The caller has already verified the file (``Classifier.load`` / ``load_model_file``);
    the version, parent, data fingerprint and claimed metrics are read from its metadata.
    ``gate_metrics`` are the engine's own measurements (e.g. ``{"locked_test": ...}`` from a
    job's evaluation). Every JSON value is stored with NaN/infinity as null.

    Raises:
        ConflictError: The version exists with a different file.
    """
    from skinstation.inference.model_file import read_metadata  # torch: not in API processes

    metadata = read_metadata(path)
    version = metadata.model_version
    with db.transaction() as session:
        existing = session.scalar(select(ModelVersion).where(ModelVersion.version == version))
        if existing is not None:
            if existing.content_sha256 != metadata.content_sha256:
                raise ConflictError(f"model version {version} already exists with other contents")
            return _info(session, existing)
    ref, sha, size = _store_file(db, path, version)
    now = utc_now()
    with db.transaction() as session:
        row = ModelVersion(
            version=version, file_ref=ref, file_sha256=sha,
            content_sha256=metadata.content_sha256, file_size=size, status=status.value,
            parent_version=metadata.parent_version or None,
            data_fingerprint=metadata.data_fingerprint,
            claimed_metrics=finite_json(metadata.metrics),
            gate_metrics=None if gate_metrics is None else finite_json(gate_metrics),
            report=finite_json(report or {}), job_id=job_id, created_by=actor, created_at=now,
            decided_by=None if status is ModelStatus.CANDIDATE else actor,
            decided_at=None if status is ModelStatus.CANDIDATE else now,
        )
        session.add(row)
        session.flush()
        audit.record(session, actor, f"model.{status.value}", "model_version", version,
                     {"file_sha256": sha, "job_id": job_id})
        return _info(session, row)


def deploy(db: EngineDatabase, version: str, *, action: str, actor: str,
           reason: str) -> SignedManifest:
    """Make a promoted version the one stations use: sign its manifest and record it.

    Raises:
        NotFoundError: No such version.
        InvalidError: The version is not promoted (candidates and rejected ones never ship).
        SigningKeyError: This node cannot sign.
    """
    public, key = active_public_key(db)
    with db.transaction() as session:
        row = _version(session, version)
        if row.status != ModelStatus.PROMOTED:
            raise InvalidError(f"model {version} is {row.status}; only promoted models deploy")
        sequence = (session.scalar(select(func.max(Deployment.sequence))) or 0) + 1
        now = utc_now()
        manifest = {
            "format": MANIFEST_FORMAT, "deployment": sequence, "action": action,
            "version": row.version, "file_sha256": row.file_sha256, "file_size": row.file_size,
            "content_sha256": row.content_sha256, "parent_version": row.parent_version or "",
            "data_fingerprint": row.data_fingerprint,
            "deployed_at": now.isoformat(timespec="seconds"), "key_id": key,
        }
        signature = sign_manifest(db, manifest, public)
        session.add(Deployment(sequence=sequence, model_version_id=row.id, action=action,
                               actor=actor, reason=reason, manifest=manifest,
                               signature=signature, key_id=key, deployed_at=now))
        audit.record(session, actor, f"model.deployed.{action}", "model_version", version,
                     {"deployment": sequence, "reason": reason})
        return SignedManifest(manifest=manifest, signature=signature)


def promote(db: EngineDatabase, version: str, *, actor: str, reason: str,
            action: str = "promote") -> SignedManifest:
    """Mark a candidate promoted and deploy it."""
    with db.transaction() as session:
        row = _version(session, version)
        if row.status == ModelStatus.REJECTED:
            raise InvalidError(f"model {version} was rejected by the gate; it cannot be promoted")
        row.status, row.decided_by, row.decided_at = ModelStatus.PROMOTED.value, actor, utc_now()
    return deploy(db, version, action=action, actor=actor, reason=reason)


def record_gate(db: EngineDatabase, version: str, *, gate_metrics: dict[str, Any],
                report: dict[str, Any]) -> None:
    """Keep what the gate measured for a version (before it is promoted or rejected)."""
    with db.transaction() as session:
        row = _version(session, version)
        row.gate_metrics, row.report = finite_json(gate_metrics), finite_json(report)


def reject(db: EngineDatabase, version: str, *, actor: str, report: dict[str, Any]) -> None:
    """Mark a candidate rejected, keeping its report."""
    with db.transaction() as session:
        row = _version(session, version)
        row.status, row.decided_by, row.decided_at = ModelStatus.REJECTED.value, actor, utc_now()
        row.report = finite_json(report)
        audit.record(session, actor, "model.rejected", "model_version", version,
                     {"reasons": report.get("gate", {}).get("reasons", [])})


def rollback(db: EngineDatabase, *, actor: str, to_version: str | None = None,
             reason: str = "rollback") -> SignedManifest:
    """Deploy an earlier promoted version again (default: the one before the current one).

    Raises:
        InvalidError: Nothing to roll back to.
    """
    with db.transaction() as session:
        history = list(session.execute(
            select(Deployment.sequence, ModelVersion.version)
            .join(ModelVersion, ModelVersion.id == Deployment.model_version_id)
            .order_by(Deployment.sequence.desc())))
    if not history:
        raise InvalidError("no model has been deployed yet; nothing to roll back")
    current = history[0][1]
    if to_version is None:
        to_version = next((v for _, v in history if v != current), None)
        if to_version is None:
            raise InvalidError(f"{current} is the only model ever deployed; nothing to roll back")
    if to_version == current:
        raise InvalidError(f"{current} is already the current model")
    return deploy(db, to_version, action="rollback", actor=actor, reason=reason)


def current(db: EngineDatabase) -> SignedManifest | None:
    """The current deployment's signed manifest (``None`` before the first deployment)."""
    with db.transaction() as session:
        row = session.scalar(select(Deployment).order_by(Deployment.sequence.desc()).limit(1))
        if row is None:
            return None
        return SignedManifest(manifest=dict(row.manifest), signature=row.signature)


def current_version(db: EngineDatabase) -> VersionOut | None:
    """The currently deployed version."""
    signed = current(db)
    if signed is None:
        return None
    with db.transaction() as session:
        return _info(session, _version(session, signed.manifest["version"]))


def get_version(db: EngineDatabase, version: str) -> VersionOut:
    """One version.

    Raises:
        NotFoundError: No such version.
    """
    with db.transaction() as session:
        return _info(session, _version(session, version))


def list_versions(db: EngineDatabase) -> list[VersionOut]:
    """Every version, oldest first."""
    with db.transaction() as session:
        return [_info(session, row)
                for row in session.scalars(select(ModelVersion).order_by(ModelVersion.id))]


def deployed_file(db: EngineDatabase, version: str) -> Path:
    """The file of a version that has been deployed (what stations may download).

    Raises:
        NotFoundError: Unknown, or never deployed (candidates and rejected ones never ship).
    """
    with db.transaction() as session:
        row = _version(session, version)
        shipped = session.scalar(select(Deployment.id).where(
            Deployment.model_version_id == row.id).limit(1))
        if shipped is None:
            raise NotFoundError(f"model {version} has not been deployed")
    return db.paths.models / row.file_ref


def _version(session: Session, version: str) -> ModelVersion:
    row = session.scalar(select(ModelVersion).where(ModelVersion.version == version))
    if row is None:
        raise NotFoundError(f"model version {version} does not exist")
    return row


def _info(session: Session, row: ModelVersion) -> VersionOut:
    latest = session.scalar(select(Deployment.model_version_id)
                            .order_by(Deployment.sequence.desc()).limit(1))
    return VersionOut(version=row.version, status=row.status, file_sha256=row.file_sha256,
                      parent_version=row.parent_version, data_fingerprint=row.data_fingerprint,
                      claimed_metrics=dict(row.claimed_metrics),
                      gate_metrics=None if row.gate_metrics is None else dict(row.gate_metrics),
                      report=dict(row.report),
                      created_by=row.created_by, created_at=row.created_at,
                      decided_by=row.decided_by, job_id=row.job_id, deployed=latest == row.id)
