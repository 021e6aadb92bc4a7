"""Atomic, durable file writes and owner-only permissions (databases, images, keys).

A file is written to a temporary name in its own folder, fsynced, renamed into place and the
folder fsynced, so after a crash it is either complete or a leftover ``.tmp-*`` file. New
files and folders are owner-only (0600 / 0700).

The permission helpers (:func:`private_dir`, :func:`private_file`, :func:`secure_tree`) check
the station's and the engine's folders at start-up: a file or folder that group or others may
access is fixed (its group/other bits cleared) with a logged warning, and one that this process
cannot fix (another user owns it) is refused with :class:`UnsafePermissionsError`.
"""

from __future__ import annotations

import contextlib
import logging
import os
import secrets
import stat
from collections.abc import Collection
from pathlib import Path

log = logging.getLogger(__name__)

TEMP_PREFIX = ".tmp-"
"""Name prefix of a file being written (start-up recovery deletes stale ones)."""

PRIVATE_FILE_MODE = 0o600
PRIVATE_DIR_MODE = 0o700
_GROUP_OTHER_BITS = 0o077


class UnsafePermissionsError(PermissionError):
    """A file or folder others may access, which this process cannot make owner-only."""


def write_atomically(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` so that a crash leaves either the old state or the full file.

    Writes a temporary file next to ``path``, fsyncs it, renames it over ``path`` and fsyncs
    the folder (and the folders it had to create) so the rename itself is durable.
    """
    temp = write_temporary(path.parent, data)
    try:
        os.replace(temp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            temp.unlink()
        raise
    fsync_directory(path.parent)


def write_temporary(folder: Path, data: bytes) -> Path:
    """Write ``data`` durably to a new ``.tmp-*`` file in ``folder``; return its path.

    The folder (and missing parents) is created owner-only and fsynced into its parent; the
    caller renames the file into place (:func:`os.replace`, then :func:`fsync_directory`) or
    deletes it.
    """
    created = _make_dirs(folder)
    temp = folder / f"{TEMP_PREFIX}{secrets.token_hex(8)}"
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            temp.unlink()
        raise
    for created_folder in created:
        fsync_directory(created_folder.parent)
    return temp


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


def make_private(path: Path) -> bool:
    """Clear the group/other permission bits of an existing file or folder (not a link).

    Args:
        path: The file or folder; a missing path or a symbolic link is left alone.

    Returns:
        Whether the mode was changed (a warning is logged then).

    Raises:
        UnsafePermissionsError: Group or others may access it and this process does not own
            it (or the change is refused).
    """
    try:
        info = path.lstat()
    except FileNotFoundError:
        return False
    mode = stat.S_IMODE(info.st_mode)
    if stat.S_ISLNK(info.st_mode) or not mode & _GROUP_OTHER_BITS:
        return False
    fixed = mode & ~_GROUP_OTHER_BITS
    if info.st_uid != os.geteuid():
        raise UnsafePermissionsError(
            f"{path} has mode {mode:04o} and belongs to another user (uid {info.st_uid}); "
            f"it must be owner-only: chmod {fixed:o} {path} as its owner, or move it"
        )
    try:
        os.chmod(path, fixed, follow_symlinks=False)
    except FileNotFoundError:
        return False
    except OSError as error:
        raise UnsafePermissionsError(
            f"{path} has mode {mode:04o} and cannot be made owner-only: {error}"
        ) from error
    log.warning("fixed permissions of %s: %04o -> %04o (owner-only)", path, mode, fixed)
    return True


def private_dir(folder: Path) -> Path:
    """Create ``folder`` (and missing parents) owner-only, or make an existing one owner-only.

    Raises:
        UnsafePermissionsError: See :func:`make_private`.
    """
    folder = Path(folder).expanduser()
    _make_dirs(folder)
    make_private(folder)
    return folder


def private_file(path: Path) -> Path:
    """Make an existing file owner-only (a missing one is left alone).

    Raises:
        UnsafePermissionsError: See :func:`make_private`.
    """
    make_private(Path(path))
    return Path(path)


def create_private_file(path: Path) -> bool:
    """Create an empty owner-only file if there is none (in an owner-only folder).

    Returns:
        Whether it was created.
    """
    private_dir(path.parent)
    try:
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, PRIVATE_FILE_MODE))
    except FileExistsError:
        return False
    return True


def secure_tree(root: Path, *, skip: Collection[Path] = (),
                folders_only: Collection[Path] = ()) -> list[Path]:
    """Make ``root`` and everything under it owner-only (0700 folders, 0600 files).

    Symbolic links are neither followed nor changed.

    Args:
        root: The folder (created owner-only if missing).
        skip: Folders under ``root`` that are made owner-only but not entered (another
            component checks them, e.g. the engine's home inside the station's).
        folders_only: Folders whose sub-folders are checked but not their files (stores of
            many files that are always written owner-only, e.g. the engine's image store).

    Returns:
        The paths whose mode was fixed (each logged as a warning).

    Raises:
        UnsafePermissionsError: A path others may access cannot be fixed.
    """
    root = Path(root).expanduser()
    _make_dirs(root)
    fixed = [root] if make_private(root) else []
    skipped = {Path(path).expanduser().absolute() for path in skip}
    no_files = {Path(path).expanduser().absolute() for path in folders_only}
    pending = [(root.absolute(), root.absolute() in no_files)]
    while pending:
        folder, files_skipped = pending.pop()
        try:
            entries = list(os.scandir(folder))
        except (FileNotFoundError, NotADirectoryError):
            continue
        for entry in entries:
            path = Path(entry.path)
            if entry.is_dir(follow_symlinks=False):
                if make_private(path):
                    fixed.append(path)
                if path not in skipped:
                    pending.append((path, files_skipped or path in no_files))
            elif entry.is_file(follow_symlinks=False) and not files_skipped and make_private(path):
                fixed.append(path)
    return fixed
