"""Data key rotation, shared by the station (``skinstation keys rotate``) and the engine.

:func:`rotate_data_keys` creates the next key version in the keyring and makes it current,
writes every referenced image file again under it, then every encrypted column (append-only
tables with their trigger lifted for that one transaction), and lets the caller add its audit
row to that same transaction. Plaintext left from before encryption at rest is encrypted too
while encryption is enabled. Old key versions stay in the keyring: backups made with them
still need them (remove them only once those backups have expired).

Rotating again after a failure is safe: whatever was already rewritten is under a newer key,
and every version still reads.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from skinstation.core.crypto import data_cipher, encryption_enabled
from skinstation.core.images import ImageStore
from skinstation.core.sqlbase import append_only_lifted
from skinstation.core.sqlcrypto import encrypted_columns, reencrypt_column


@dataclass(frozen=True)
class RotationReport:
    """What a rotation did.

    Attributes:
        key: The new current key version.
        older: Versions still in the keyring (needed by backups made with them).
        images: Image files written again.
        values: Values written again, by ``table.column``.
    """

    key: str
    older: tuple[str, ...]
    images: int
    values: dict[str, int] = field(default_factory=dict)

    def detail(self) -> dict[str, Any]:
        """The audit row's detail (counts only)."""
        return {"key": self.key, "images": self.images, "values": dict(self.values),
                "older_keys": list(self.older)}

    def lines(self, keyring_entry: str) -> list[str]:
        """What the command prints."""
        columns = ", ".join(f"{name} {count}" for name, count in self.values.items())
        lines = [f"data key {self.key} is current: re-encrypted {self.images} image file(s) "
                 f"and {sum(self.values.values())} value(s) ({columns})"]
        if self.older:
            lines.append(
                f"older key version(s) {', '.join(self.older)} stay in the keyring "
                f"({keyring_entry}-<version>): backups made before now need them; remove them "
                "only once those backups have expired")
        return lines


def rotate_data_keys(keys: str, images: ImageStore, metadata: sa.MetaData,
                     transaction: Callable[[], Any],
                     image_rows: Callable[[Session], Iterable[Any]],
                     append_only: dict[str, str],
                     audit: Callable[[Session, RotationReport], None]) -> RotationReport:
    """Rotate one database's data keys (see the module docstring).

    Args:
        keys: The data keys' name (``station-data`` / ``engine-data``).
        images: The database's image store.
        metadata: Its tables (the encrypted columns are found there).
        transaction: Its ``transaction()`` context (a session in one transaction).
        image_rows: Query of ``(image_ref, image_sha256)`` of every stored image.
        append_only: Append-only tables with encrypted columns → their PostgreSQL trigger
            function.
        audit: Adds the audit row to the columns' transaction.

    Returns:
        What was rewritten.

    Raises:
        KeystoreError: No usable keyring, or a value's or file's key is missing.
        ImageError: A referenced image is missing or damaged (the columns are not touched;
            fix the image store, e.g. with recovery, then rotate again).
    """
    cipher = data_cipher(keys)
    new = cipher.keys.rotate()
    older = tuple(version for version in cipher.keys.versions() if version != new)
    with transaction() as session:
        stored = sorted(set(image_rows(session)))
    rewritten = sum(images.reencrypt(ref, sha256) for ref, sha256 in stored)
    values: dict[str, int] = {}
    with transaction() as session:
        connection = session.connection()
        for spec in encrypted_columns(metadata):
            lifted = (append_only_lifted(connection, spec.table, "update")
                      if spec.table in append_only else contextlib.nullcontext())
            with lifted:
                values[f"{spec.table}.{spec.column}"] = reencrypt_column(
                    connection, cipher, spec, encrypt_plaintext=encryption_enabled(keys))
        report = RotationReport(new, older, rewritten, values)
        audit(session, report)
    return report
