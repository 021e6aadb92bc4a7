"""Atomic, durable file writes (image files, model files, registry copies).

A file is written to a temporary name in its own folder, fsynced, renamed into place and the
folder fsynced, so after a crash it is either complete or a leftover ``.tmp-*`` file. New
files and folders are owner-only (0600 / 0700).
"""

from __future__ import annotations

import contextlib
import os
import secrets
from pathlib import Path

TEMP_PREFIX = ".tmp-"
"""Name prefix of a file being written (start-up recovery deletes stale ones)."""


def write_atomically(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` so that a crash leaves either the old state or the full file.

    Writes a temporary file next to ``path``, fsyncs it, renames it over ``path`` and fsyncs
    the folder (and the folders it had to create) so the rename itself is durable.
    """
    created = _make_dirs(path.parent)
    temp = path.parent / f"{TEMP_PREFIX}{secrets.token_hex(8)}"
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            temp.unlink()
        raise
    fsync_directory(path.parent)
    for folder in created:
        fsync_directory(folder.parent)


def _make_dirs(folder: Path) -> list[Path]:
    """Create ``folder`` and missing parents (owner-only); return those created, deepest last."""
    missing: list[Path] = []
    current = folder
    while not current.exists():
        missing.append(current)
        current = current.parent
    for created in reversed(missing):
        with contextlib.suppress(FileExistsError):
            created.mkdir(mode=0o700)
    return list(reversed(missing))


def fsync_directory(folder: Path) -> None:
    """Flush a folder's entries (new names, renames) to disk."""
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
