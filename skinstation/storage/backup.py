"""Station backup and restore: one archive with the database, the images and the models.

``skinstation backup --out FILE`` writes a tar archive (mode 0600) holding a consistent
snapshot of the SQLite database (SQLite's online backup, safe while the station runs), every
image file, the installed models and ``settings.toml``, with a manifest of SHA-256 sums.
``skinstation restore FILE`` checks every sum before anything is moved into place, sets a
station home that already holds data aside (never deletes it), then migrates the restored
database to the current schema and runs start-up recovery.

Secrets are not in the archive: the station credential and the data key stay in the
keyring. A restored station on the same machine syncs on; on a new machine, re-enroll it
(and bring the data key, see the README) before images encrypted at rest can be read.

A restored station continues to sync: visits and captures are identified to the engine by
UUIDs, so visits made after the restore never collide with visits the engine received from
the station after the backup was taken, and captures the engine already has are answered
as duplicates.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import sqlite3
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy.engine import make_url

from skinstation.core.files import private_dir, secure_tree
from skinstation.core.timeutil import utc_now
from skinstation.inference.model_file import file_sha256
from skinstation.settings import Settings
from skinstation.storage.errors import StorageError

FORMAT = "skinstation-station-backup/1"
DATABASE_MEMBER = "station.db"
FOLDERS = ("images", "models")
FILES = ("settings.toml",)


class BackupError(StorageError):
    """A backup cannot be written, or an archive cannot be restored (nothing was changed)."""


@dataclass(frozen=True)
class BackupReport:
    """What a backup or a restore handled.

    Attributes:
        archive: The archive file.
        files: Files in the archive (the database included).
        images: Image files among them.
        total_bytes: Their total size.
        set_aside: Restore only: where the station's previous data was moved (None: it had
            none).
    """

    archive: Path
    files: int
    images: int
    total_bytes: int
    set_aside: Path | None = None


def _sqlite_path(settings: Settings) -> Path:
    url = make_url(settings.database_url)
    if url.get_backend_name() != "sqlite" or not url.database:
        raise BackupError(
            "the station database is not a SQLite file: back it up with the database's own "
            "tools (pg_dump) and copy the images folder; 'skinstation backup' handles SQLite")
    return Path(url.database)


def _members(settings: Settings, snapshot: Path) -> list[tuple[str, Path]]:
    members = [(DATABASE_MEMBER, snapshot)]
    for folder in FOLDERS:
        root = settings.home / folder
        if root.is_dir():
            members += [(path.relative_to(settings.home).as_posix(), path)
                        for path in sorted(root.rglob("*"))
                        if path.is_file() and "incoming" not in path.relative_to(root).parts]
    members += [(name, settings.home / name) for name in FILES
                if (settings.home / name).is_file()]
    return members


def create_backup(settings: Settings, out: Path) -> BackupReport:
    """Write a backup archive of the station at ``settings.home`` to ``out`` (mode 0600).

    Args:
        settings: The station's settings (SQLite ``database_url``).
        out: The archive to write; refused if it exists.

    Returns:
        What the archive holds.

    Raises:
        BackupError: The database is not SQLite, or ``out`` exists or cannot be written.
    """
    database = _sqlite_path(settings)
    if not database.is_file():
        raise BackupError(f"no station database at {database}")
    if out.exists():
        raise BackupError(f"{out} exists; choose a new file name")
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out.parent, prefix=".backup-") as scratch:
        snapshot = Path(scratch) / DATABASE_MEMBER
        source = sqlite3.connect(database)
        try:
            target = sqlite3.connect(snapshot)
            with target:
                source.backup(target)
            target.close()
        finally:
            source.close()
        members = _members(settings, snapshot)
        manifest: dict[str, Any] = {
            "format": FORMAT, "created_at": utc_now().isoformat(),
            "station_id": settings.station_id,
            "files": {name: {"sha256": file_sha256(path), "size": path.stat().st_size}
                      for name, path in members},
        }
        partial = out.with_name(out.name + ".partial")
        try:
            descriptor = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(descriptor, "wb") as handle, \
                    tarfile.open(fileobj=handle, mode="w") as tar:
                data = json.dumps(manifest, indent=1, sort_keys=True).encode()
                info = tarfile.TarInfo("manifest.json")
                info.size, info.mode, info.mtime = len(data), 0o600, int(utc_now().timestamp())
                tar.addfile(info, io.BytesIO(data))
                for name, path in members:
                    tar.add(path, arcname=name, recursive=False, filter=_private)
                handle.flush()
                os.fsync(handle.fileno())
            partial.replace(out)
        except OSError as error:
            partial.unlink(missing_ok=True)
            raise BackupError(f"cannot write {out}: {error}") from error
    return BackupReport(out, len(members), sum(n.startswith("images/") for n, _ in members),
                        sum(entry["size"] for entry in manifest["files"].values()))


def _private(member: tarfile.TarInfo) -> tarfile.TarInfo:
    member.mode, member.uid, member.gid, member.uname, member.gname = 0o600, 0, 0, "", ""
    return member


def _read_checked(archive: Path, into: Path) -> dict[str, Any]:
    """Extract ``archive`` into ``into`` and check it against its manifest."""
    try:
        with tarfile.open(archive, mode="r") as tar:
            if "manifest.json" not in tar.getnames():
                raise BackupError(f"{archive} has no manifest: not a station backup")
            manifest_member = tar.extractfile("manifest.json")
            if manifest_member is None:
                raise BackupError(f"{archive} has no manifest: not a station backup")
            manifest: dict[str, Any] = json.loads(manifest_member.read())
            if manifest.get("format") != FORMAT:
                raise BackupError(f"{archive} is not a station backup ({manifest.get('format')})")
            listed = set(manifest["files"])
            members = [m for m in tar.getmembers() if m.name != "manifest.json"]
            unexpected = sorted({m.name for m in members} - listed)
            if unexpected:
                raise BackupError(f"{archive} holds files its manifest does not list: "
                                  f"{unexpected[:3]}")
            tar.extractall(into, members=members, filter="data")
    except (tarfile.TarError, KeyError, json.JSONDecodeError, OSError) as error:
        raise BackupError(f"cannot read {archive}: {error}") from error
    for name, entry in manifest["files"].items():
        path = into / name
        if not path.is_file():
            raise BackupError(f"{archive} is incomplete: {name} is missing")
        if file_sha256(path) != entry["sha256"]:
            raise BackupError(f"{archive} is damaged: {name} does not match its checksum")
    return manifest


def restore_backup(settings: Settings, archive: Path) -> BackupReport:
    """Restore ``archive`` into ``settings.home``; previous data there is set aside, not lost.

    Every checksum is verified before anything is moved into place: a damaged or foreign
    archive changes nothing. The caller then opens the database (``init_database``), which
    migrates it to the current schema and runs start-up recovery.

    Args:
        settings: The station's settings (SQLite ``database_url`` inside ``home``).
        archive: An archive written by :func:`create_backup`.

    Returns:
        What was restored and where earlier data went.

    Raises:
        BackupError: The archive is damaged, foreign or incomplete, or the database is not
            the SQLite file in the station home.
    """
    database = _sqlite_path(settings)
    if database.parent != settings.home:
        raise BackupError(f"the station database {database} is outside the station home")
    private_dir(settings.home)
    with tempfile.TemporaryDirectory(dir=settings.home, prefix=".restore-") as scratch:
        staged = Path(scratch)
        manifest = _read_checked(archive, staged)
        present = [name for name in (database.name, *FOLDERS, *FILES)
                   if (settings.home / name).exists()]
        set_aside = None
        if present:
            set_aside = private_dir(
                settings.home / f"before-restore-{utc_now():%Y%m%dT%H%M%S%f}")
            for name in present:
                shutil.move(settings.home / name, set_aside / name)
            for suffix in ("-wal", "-shm"):
                side = database.with_name(database.name + suffix)
                if side.exists():
                    shutil.move(side, set_aside / side.name)
        for name in (DATABASE_MEMBER, *FOLDERS, *FILES):
            if (staged / name).exists():
                (staged / name).replace(settings.home / (database.name
                                                         if name == DATABASE_MEMBER else name))
    secure_tree(settings.home)
    files = manifest["files"]
    return BackupReport(archive, len(files), sum(n.startswith("images/") for n in files),
                        sum(entry["size"] for entry in files.values()), set_aside)

