"""``skinstation keys rotate``: the station's data keys rotated, everything re-encrypted.

See :mod:`skinstation.core.rotation`. The audit row ``keys.rotated`` (counts only) commits
with the re-encrypted columns.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from skinstation.core.crypto import STATION_KEYS
from skinstation.core.rotation import RotationReport, rotate_data_keys
from skinstation.core.timeutil import utc_now
from skinstation.storage.audit import AuditAction, record_audit
from skinstation.storage.database import Database
from skinstation.storage.models import Base, Capture, Label

TRIGGER_FUNCTION = "skinstation_forbid_change"
"""The station's PostgreSQL append-only trigger function (migration 0001)."""


def rotate_station_keys(database: Database, actor_id: int | None = None) -> RotationReport:
    """Rotate the station's data keys and re-encrypt its images and encrypted columns.

    Raises:
        KeystoreError: No usable keyring, or a value's or file's key is missing.
        ImageError: A referenced image is missing or damaged.
    """
    def image_rows(session: Session) -> Any:
        return session.execute(select(Capture.image_ref, Capture.image_sha256))

    def audit(session: Session, report: RotationReport) -> None:
        record_audit(session, at=utc_now(), station_id=database.settings.station_id,
                     actor_id=actor_id, action=AuditAction.KEYS_ROTATED, detail=report.detail())

    append_only = {Label.__tablename__: TRIGGER_FUNCTION}  # the append-only one encrypted
    return rotate_data_keys(STATION_KEYS, database.images, Base.metadata, database.transaction,
                            image_rows, append_only, audit)
