"""Importing a model file: it becomes a *candidate*; stations get it only through the gate.

A model file brought in from outside (``skinstation engine models import FILE``) claims its
own metrics, and nothing here can check a claim. So an imported file is registered as a
candidate and deployed to no station; the promotion gate
(:func:`skinstation.engine.retraining.admission.gate_candidate`, ``engine models gate``)
measures it on the locked test set against the current model and promotes it only if it is
not worse. Two exceptions, both in the audit log:

* the very first model (there is nothing to gate against) is deployed at once, with the reason
  :data:`FIRST_MODEL_REASON`;
* an administrator may ``--force`` a model past the gate, with a reason: audited as
  ``model.forced`` before it is deployed.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from skinstation.engine.audit import service as audit
from skinstation.engine.database import EngineDatabase
from skinstation.engine.errors import InvalidError
from skinstation.engine.models import service as registry
from skinstation.engine.models.models import ModelStatus
from skinstation.engine.models.schemas import VersionOut
from skinstation.protocol.manifest import SignedManifest

FIRST_MODEL_REASON = "first model: no deployed model to gate against"
FORCED = "model.forced"


@dataclass(frozen=True)
class ImportOutcome:
    """What importing a file did.

    Attributes:
        version: The registered version (as it is now).
        how: ``candidate`` (waits for the gate), ``first`` (deployed: the first model),
            ``forced`` (deployed past the gate) or ``known`` (already registered, unchanged).
        deployment: The signed manifest when it was deployed.
    """

    version: VersionOut
    how: str
    deployment: SignedManifest | None = None


def import_model(db: EngineDatabase, path: Path, *, actor: str, force: bool = False,
                 reason: str | None = None) -> ImportOutcome:
    """Verify a model file and register it as a candidate (see the module docstring).

    Args:
        db: The engine database.
        path: The ``.safetensors`` model file.
        actor: The administrator importing it (the engine CLI's ``cli:<user>``).
        force: Deploy it without the gate (needs ``reason``).
        reason: Why it skips the gate (recorded in the audit log and the deployment).

    Raises:
        InvalidError: ``force`` without a reason; the file is unreadable, truncated or
            tampered; or a forced model is already the current one or was rejected.
        ConflictError: The version exists with other contents.
        SigningKeyError: A deployment is due but this node cannot sign.
    """
    from skinstation.inference.model_file import ModelFileError, load_model_file

    why = (reason or "").strip()
    if force and not why:
        raise InvalidError("--force deploys a model without the promotion gate: give the "
                           "reason with --reason TEXT (it goes into the audit log)")
    try:
        load_model_file(path)  # refuses a truncated or tampered file
    except ModelFileError as error:
        raise InvalidError(f"{error}; nothing imported") from None
    current = registry.current_version(db)
    known = {v.version for v in registry.list_versions(db)}  # to tell a re-import apart
    info = registry.register_model(db, path, status=ModelStatus.CANDIDATE, actor=actor)
    if current is None:
        signed = registry.promote(db, info.version, actor=actor, reason=FIRST_MODEL_REASON,
                                  action="initial")
        return ImportOutcome(registry.current_version(db) or info, "first", signed)
    if not force:
        return ImportOutcome(info, "known" if info.version in known else "candidate")
    if info.version == current.version:
        raise InvalidError(f"{info.version} is already the current model")
    if info.status == ModelStatus.REJECTED:
        raise InvalidError(f"model {info.version} was rejected by the gate; it cannot be "
                           "forced (import a new version)")
    with db.transaction() as session:
        audit.record(session, actor, FORCED, "model_version", info.version,
                     {"reason": why, "replaces": current.version, "status": info.status})
    signed = registry.promote(db, info.version, actor=actor,
                              reason=f"forced past the promotion gate: {why}")
    return ImportOutcome(registry.current_version(db) or info, "forced", signed)
