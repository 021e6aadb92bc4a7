"""Start-up recovery: remove what a crash can leave in the image store.

Images are written before their database row commits, so a crash can leave (a) a temporary
``.tmp-*`` file from an interrupted write and (b) a complete image file whose row never
committed (an orphan). Both are deleted once older than a grace period; the grace protects a
writer in another process that is between writing its file and committing its row. The
reverse — a row without its image — cannot happen by construction and is only reported.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.engine import Engine

from skinstation.core.crypto import STATION_KEYS
from skinstation.core.files import TEMP_PREFIX
from skinstation.core.images import ImageStore
from skinstation.settings import Settings
from skinstation.storage.models import Capture

log = logging.getLogger(__name__)

DEFAULT_ORPHAN_GRACE = timedelta(minutes=5)


@dataclass(frozen=True)
class RecoveryReport:
    """What :func:`recover` found.

    Attributes:
        orphans_removed: References of image files deleted because no capture row names them.
        temp_files_removed: Number of leftover temporary files deleted.
        missing_images: Ids of captures whose image file is absent (never deleted, reported).
        corrupt_images: Ids of captures whose file fails its sha256 (only with ``verify``).
    """

    orphans_removed: tuple[str, ...] = ()
    temp_files_removed: int = 0
    missing_images: tuple[int, ...] = ()
    corrupt_images: tuple[int, ...] = ()

    @property
    def clean(self) -> bool:
        """True if nothing needed doing and nothing is wrong."""
        return self == RecoveryReport()


def recover(
    settings: Settings,
    *,
    engine: Engine | None = None,
    grace: timedelta = DEFAULT_ORPHAN_GRACE,
    verify: bool = False,
) -> RecoveryReport:
    """Delete orphan and temporary image files older than ``grace``; report missing images.

    Args:
        settings: Supplies ``images_dir`` and (without ``engine``) ``database_url``.
        engine: Engine of the station database (one is opened from the settings if None;
            the schema must already be migrated).
        grace: Only files last modified longer ago than this are deleted.
        verify: Also re-hash every referenced image and report those that do not match.

    Returns:
        The report.
    """
    if engine is None:  # imported here: database imports this module
        from skinstation.core.sqlbase import create_database_engine

        owned = create_database_engine(settings.database_url)
        try:
            return recover(settings, engine=owned, grace=grace, verify=verify)
        finally:
            owned.dispose()

    store = ImageStore(settings.images_dir, keys=STATION_KEYS)
    # List files BEFORE reading the rows: a file whose row commits in between is then seen
    # as referenced. A file written after the listing is not considered at all.
    on_disk = list(store.files())
    with engine.connect() as connection:
        rows = connection.execute(select(Capture.id, Capture.image_ref, Capture.image_sha256))
        captures = [(row.id, row.image_ref, row.image_sha256) for row in rows]
    referenced = {ref for _, ref, _ in captures}
    cutoff = time.time() - grace.total_seconds()

    orphans: list[str] = []
    temp_removed = 0
    for path in on_disk:
        is_temp = path.name.startswith(TEMP_PREFIX)
        if not is_temp and store.ref_of(path) in referenced:
            continue
        if not _older_than(path, cutoff):
            continue
        path.unlink(missing_ok=True)
        if is_temp:
            temp_removed += 1
        else:
            orphans.append(store.ref_of(path))

    missing: list[int] = []
    corrupt: list[int] = []
    for capture_id, ref, sha256 in captures:
        path = store.path_for(ref)
        if not path.is_file():
            missing.append(capture_id)
        elif verify and not store.intact(ref, sha256):  # decrypted first
            corrupt.append(capture_id)

    report = RecoveryReport(tuple(orphans), temp_removed, tuple(missing), tuple(corrupt))
    if orphans or temp_removed:
        log.warning(
            "recovery removed %d orphan image(s) and %d temporary file(s)",
            len(orphans),
            temp_removed,
        )
    if missing or corrupt:
        log.error(
            "recovery found captures with missing images %s and corrupt images %s",
            missing,
            corrupt,
        )
    return report


def _older_than(path: Path, cutoff: float) -> bool:
    try:
        return path.stat().st_mtime <= cutoff
    except FileNotFoundError:
        return False
