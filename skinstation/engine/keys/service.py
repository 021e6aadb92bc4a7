"""Rotating the engine's data keys: every image file and encrypted column re-encrypted.

See :mod:`skinstation.core.rotation`. The audit row ``keys.rotated`` (counts only) commits
with the re-encrypted columns. Several API workers may keep serving meanwhile: each reads the
current key version from the keyring for every value it encrypts, and every version still in
the keyring decrypts.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from skinstation.core.crypto import ENGINE_KEYS
from skinstation.core.rotation import RotationReport, rotate_data_keys
from skinstation.engine import tables
from skinstation.engine.audit import service as audit
from skinstation.engine.database import EngineDatabase
from skinstation.engine.ingest.models import Capture
from skinstation.engine.review.models import Review

KEYS_ROTATED = "keys.rotated"
TRIGGER_FUNCTION = "skinstation_engine_forbid_change"
"""The engine's PostgreSQL append-only trigger function (migration 0001)."""


def rotate_engine_keys(db: EngineDatabase, actor: str) -> RotationReport:
    """Rotate the engine's data keys and re-encrypt its images and encrypted columns.

    Raises:
        KeystoreError: No usable keyring, or a value's or file's key is missing.
        ImageError: A referenced image is missing or damaged.
    """
    def image_rows(session: Session) -> Any:
        return session.execute(select(Capture.image_ref, Capture.image_sha256))

    def record(session: Session, report: RotationReport) -> None:
        audit.record(session, actor, KEYS_ROTATED, None, None, report.detail())

    append_only = {Review.__tablename__: TRIGGER_FUNCTION}  # the append-only one encrypted
    return rotate_data_keys(ENGINE_KEYS, db.images, tables.Base.metadata, db.transaction,
                            image_rows, append_only, record)
