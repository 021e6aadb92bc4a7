"""Encrypted columns: a SQLAlchemy type that encrypts on the way in and decrypts on the way out.

:class:`EncryptedText` wraps ``String(length)`` (or ``Text``) with the process's
:func:`~skinstation.core.crypto.data_cipher` of one database. Values are stored as
``enc:<key>:<g|d>:<base64url>`` bound to the column (``table.column``), so a value copied to
another column does not decrypt; a value without the prefix is legacy plaintext and reads as
it is. Lengths are checked on the plaintext before it gets here (core validation, the wire
contract); the column is wide enough for the ciphertext of the longest plaintext.

Deterministic columns (pseudonyms) encrypt one value to one ciphertext under one key, so the
unique constraint holds. An equality test against a Python value (``Patient.pseudonym ==
"P-1"``) matches every form that value may be stored in: the plaintext and its ciphertext
under each key version in the keyring (:meth:`~skinstation.core.crypto.Cipher.
deterministic_forms`), so lookups keep working for rows written before encryption or under
an older key.

:func:`reencrypt_column` rewrites one column under the current key (the rotation commands).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Dialect
from sqlalchemy.sql import operators
from sqlalchemy.sql.elements import ColumnElement
from sqlalchemy.types import TypeDecorator, TypeEngine

from skinstation.core.crypto import (
    TEXT_PREFIX,
    Cipher,
    data_cipher,
    encryption_enabled,
)
from skinstation.core.keyring_file import KeystoreError

# Column widths for the ciphertext of the longest plaintext (``enc:v999999:d:`` is 14
# characters, then base64 of the sealed UTF-8 bytes, at most 4 bytes a character):
PSEUDONYM_COLUMN = 400
"""64 characters: SIV 16 + 256 bytes -> 364, GCM 28 + 256 -> 380 base64 characters, + 14."""
NAME_COLUMN = 1200
"""200 characters: GCM 28 + 800 bytes -> 1104 base64 characters, + 14."""
REF_COLUMN = 256
"""128 ASCII characters (a provider's end-user id): SIV 16 + 128 -> 192, + 14."""


class EncryptedText(TypeDecorator[str]):
    """A text column kept encrypted with the data keys ``keys`` (see the module docstring).

    Args:
        keys: :data:`~skinstation.core.crypto.STATION_KEYS` or ``ENGINE_KEYS``.
        context: What the value is, ``table.column``; authenticated with every value.
        deterministic: Same plaintext, same ciphertext (for looked-up or unique columns).
        length: ``VARCHAR`` length for the ciphertext; ``None`` for ``TEXT``.
    """

    impl: TypeEngine[Any] | type[TypeEngine[Any]] = sa.Text
    cache_ok = True

    def __init__(self, keys: str, context: str, *, deterministic: bool = False,
                 length: int | None = None) -> None:
        super().__init__()
        self.keys = keys
        self.context = context
        self.deterministic = deterministic
        self.length = length
        self.impl = sa.String(length) if length is not None else sa.Text()

    def process_bind_param(self, value: str | None, dialect: Dialect) -> str | None:
        """Encrypt (plaintext stays plaintext only where encryption is configured off)."""
        if value is None:
            return None
        if encryption_enabled(self.keys) or value.startswith(TEXT_PREFIX):
            return data_cipher(self.keys).encrypt_text(
                value, context=self.context, deterministic=self.deterministic)
        return value

    def process_result_value(self, value: str | None, dialect: Dialect) -> str | None:
        """Decrypt (legacy plaintext is returned as it is).

        Raises:
            DecryptionError: The key is not in the keyring, or the value was changed.
        """
        if value is None or not value.startswith(TEXT_PREFIX):
            return value
        return data_cipher(self.keys).decrypt_text(value, context=self.context)

    class comparator_factory(TypeDecorator.Comparator[str]):
        """Equality with a Python string matches each stored form of it (deterministic only)."""

        def operate(self, op: Any, *other: Any, **kwargs: Any) -> ColumnElement[Any]:
            """``column == "value"`` becomes ``column IN (each stored form of "value")``."""
            column_type = self.type
            if (op is operators.eq and len(other) == 1 and isinstance(other[0], str)
                    and isinstance(column_type, EncryptedText) and column_type.deterministic):
                forms = lookup_forms(column_type, other[0])
                return self.expr.in_([sa.literal(form, sa.String()) for form in forms])
            return super().operate(op, *other, **kwargs)


def lookup_forms(column_type: EncryptedText, plaintext: str) -> list[str]:
    """The stored forms an equality lookup of ``plaintext`` matches (plaintext first)."""
    try:
        cipher = data_cipher(column_type.keys)
        return cipher.deterministic_forms(plaintext, context=column_type.context)
    except KeystoreError:
        if encryption_enabled(column_type.keys):
            raise
        return [plaintext]  # encryption off and no keyring: only plaintext can be stored


@dataclass(frozen=True)
class EncryptedColumn:
    """One encrypted column of a database (what the rotation commands rewrite)."""

    table: str
    column: str
    context: str
    deterministic: bool


def encrypted_columns(metadata: sa.MetaData) -> list[EncryptedColumn]:
    """Every :class:`EncryptedText` column in ``metadata``, in table order."""
    found = []
    for table in metadata.sorted_tables:
        for column in table.columns:
            if isinstance(column.type, EncryptedText):
                found.append(EncryptedColumn(table.name, column.name, column.type.context,
                                             column.type.deterministic))
    return found


def reencrypt_column(connection: Connection, cipher: Cipher, spec: EncryptedColumn, *,
                     encrypt_plaintext: bool) -> int:
    """Write every value of one column again under the current key; returns how many.

    Reads and writes the raw stored values (no type processing). Values already under the
    current key are left alone; plaintext ones are encrypted only with ``encrypt_plaintext``.
    The caller owns the transaction (and lifts an append-only trigger first).

    Raises:
        DecryptionError: A value's key is not in the keyring, or the value was changed
            (nothing of this transaction is kept).
    """
    table = sa.table(spec.table, sa.column("id", sa.Integer()),
                     sa.column(spec.column, sa.Text()))
    value_column = table.c[spec.column]
    current = cipher.keys.current_id()
    rows = connection.execute(sa.select(table.c.id, value_column)
                              .where(value_column.is_not(None)).order_by(table.c.id)).all()
    changed = 0
    for row_id, stored in rows:
        key_id = cipher.key_id_of_text(stored)
        if key_id == current or (key_id is None and not encrypt_plaintext):
            continue
        plaintext = cipher.decrypt_text(stored, context=spec.context)
        sealed = cipher.encrypt_text(plaintext, context=spec.context,
                                     deterministic=spec.deterministic)
        connection.execute(sa.update(table).where(table.c.id == row_id)
                           .values({spec.column: sealed}))
        changed += 1
    return changed
