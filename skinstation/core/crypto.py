"""Encryption at rest: versioned data keys from the keyring, and the ciphers that use them.

Each database has its own data keys (``station-data`` for a station, ``engine-data`` for the
engine), kept only in the keyring (:mod:`skinstation.core.keystore`): version ``v1`` is
created on first use, :meth:`DataKeys.rotate` adds the next one and makes it current. Old
versions stay in the keyring so everything written under them still reads; the rotation
commands re-encrypt what was written under an old key.

From each 32-byte data key two keys are derived (HKDF-SHA256):

* AES-256-GCM with a random 96-bit nonce, for images and free text (names, notes);
* AES-256-SIV, *deterministic*, for pseudonyms: the same pseudonym always encrypts to the
  same value under one key, so a pseudonym can still be looked up and kept unique. It reveals
  only whether two rows hold the same pseudonym, which the unique constraint implies anyway.

The context (table and column, or an image's content address) is authenticated with every
value, so a ciphertext copied to another column or file does not decrypt.

Text values read ``enc:<key>:<g|d>:<base64url>``; files start with :data:`BLOB_MAGIC`. A
value without the prefix is legacy plaintext and is returned unchanged (the rotation command
encrypts it).

The process keeps one :class:`Cipher` per data-key name (:func:`data_cipher`), loaded lazily
from the keyring on first use; the database openers say whether new data is encrypted
(:func:`configure_data_keys`, from the ``encrypt_at_rest`` settings).
"""

from __future__ import annotations

import base64
import binascii
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import keyring
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM, AESSIV
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from keyring.backend import KeyringBackend

from skinstation.core.keyring_file import KeystoreError
from skinstation.core.keystore import (
    ENV_FILE,
    ENV_KEY_FILE,
    ENV_PASSPHRASE,
    SECRETS_SERVICE,
    default_keyring,
    get_or_create_secret,
    require_secure,
)

STATION_KEYS = "station-data"
"""The station database's data keys (its encrypted columns and image files)."""
ENGINE_KEYS = "engine-data"
"""The engine's data keys."""
TEXT_PREFIX = "enc:"
BLOB_MAGIC = b"SKENC1"
NONCE_BYTES = 12
_KEY_ID = re.compile(r"^v[1-9][0-9]{0,5}$")


class DecryptionError(KeystoreError):
    """A value cannot be decrypted: wrong key, changed bytes, or moved to another place."""


def _derive(key: bytes, purpose: bytes, length: int) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=length, salt=None,
                info=b"skinstation/" + purpose).derive(key)


@dataclass
class DataKeys:
    """The versioned data keys of one database, read from the keyring once per process.

    Attributes:
        name: ``station-data`` or ``engine-data``; keyring entries are ``<name>-v1``,
            ``<name>-v2``... and ``<name>-current`` (which version encrypts new data).
        backend: The keyring; :func:`~skinstation.core.keystore.default_keyring` if None.
    """

    name: str
    backend: KeyringBackend | None = None
    _keys: dict[str, bytes] = field(default_factory=dict, repr=False)

    def _ring(self) -> KeyringBackend:
        return default_keyring() if self.backend is None else require_secure(self.backend)

    def current_id(self) -> str:
        """The version new data is encrypted with (``v1`` is created on first use only)."""
        ring = self._ring()
        stored = ring.get_password(SECRETS_SERVICE, f"{self.name}-current")
        if stored is None:
            self._keys["v1"] = get_or_create_secret(f"{self.name}-v1", backend=self.backend)
            ring.set_password(SECRETS_SERVICE, f"{self.name}-current", "v1")
            return "v1"
        if not _KEY_ID.match(stored):
            raise KeystoreError(f"keyring entry {SECRETS_SERVICE}/{self.name}-current is not a "
                                f"key version: {stored[:20]!r}")
        return stored

    def key(self, key_id: str) -> bytes:
        """The 32-byte key of version ``key_id``; never created here (a lost key stays lost).

        Raises:
            DecryptionError: The keyring does not hold that version.
        """
        if not _KEY_ID.match(key_id):
            raise DecryptionError(f"not a key version: {key_id[:20]!r}")
        if key_id not in self._keys:
            if self._ring().get_password(SECRETS_SERVICE, f"{self.name}-{key_id}") is None:
                raise DecryptionError(f"data key {self.name} {key_id} is not in the keyring")
            self._keys[key_id] = get_or_create_secret(f"{self.name}-{key_id}",
                                                      backend=self.backend)
        return self._keys[key_id]

    def versions(self) -> list[str]:
        """The key versions the keyring holds, oldest first (nothing is created here)."""
        ring = self._ring()
        stored = ring.get_password(SECRETS_SERVICE, f"{self.name}-current")
        if stored is None or not _KEY_ID.match(stored):
            return []
        return [f"v{n}" for n in range(1, int(stored[1:]) + 1)
                if f"v{n}" in self._keys
                or ring.get_password(SECRETS_SERVICE, f"{self.name}-v{n}") is not None]

    def rotate(self) -> str:
        """Create the next key version and make it current; returns its id."""
        new = f"v{int(self.current_id()[1:]) + 1}"
        self._keys[new] = get_or_create_secret(f"{self.name}-{new}", backend=self.backend)
        self._ring().set_password(SECRETS_SERVICE, f"{self.name}-current", new)
        return new


@dataclass
class Cipher:
    """Encrypts and decrypts values with :class:`DataKeys` (see the module docstring)."""

    keys: DataKeys

    _gcm_cache: dict[str, AESGCM] = field(default_factory=dict, repr=False)
    _siv_cache: dict[str, AESSIV] = field(default_factory=dict, repr=False)

    def _gcm(self, key_id: str) -> AESGCM:
        if key_id not in self._gcm_cache:
            self._gcm_cache[key_id] = AESGCM(_derive(self.keys.key(key_id), b"gcm", 32))
        return self._gcm_cache[key_id]

    def _siv(self, key_id: str) -> AESSIV:
        if key_id not in self._siv_cache:
            self._siv_cache[key_id] = AESSIV(_derive(self.keys.key(key_id), b"siv", 64))
        return self._siv_cache[key_id]

    def encrypt_text(self, plaintext: str, *, context: str, deterministic: bool = False) -> str:
        """``plaintext`` as ``enc:<key>:<g|d>:<base64url>`` bound to ``context``."""
        key_id = self.keys.current_id()
        data, aad = plaintext.encode("utf-8"), context.encode("utf-8")
        if deterministic:
            sealed = self._siv(key_id).encrypt(data, [aad])
            kind = "d"
        else:
            nonce = os.urandom(NONCE_BYTES)
            sealed = nonce + self._gcm(key_id).encrypt(nonce, data, aad)
            kind = "g"
        return f"{TEXT_PREFIX}{key_id}:{kind}:{base64.urlsafe_b64encode(sealed).decode()}"

    def deterministic_forms(self, plaintext: str, *, context: str) -> list[str]:
        """Every stored form ``plaintext`` may have in a deterministic column.

        The plaintext itself (a value written before encryption) and its deterministic
        encryption under each key version still in the keyring, so a lookup finds a row
        whichever key it was written under (also halfway through a rotation).
        """
        data, aad = plaintext.encode("utf-8"), context.encode("utf-8")
        forms = [plaintext]
        for key_id in self.keys.versions():
            sealed = self._siv(key_id).encrypt(data, [aad])
            forms.append(f"{TEXT_PREFIX}{key_id}:d:{base64.urlsafe_b64encode(sealed).decode()}")
        return forms

    def decrypt_text(self, value: str, *, context: str) -> str:
        """The plaintext of ``value`` (legacy plaintext without the prefix is returned as is).

        Raises:
            DecryptionError: Wrong or missing key, changed bytes, or another context.
        """
        if not value.startswith(TEXT_PREFIX):
            return value
        try:
            key_id, kind, encoded = value[len(TEXT_PREFIX):].split(":", 2)
            sealed = base64.urlsafe_b64decode(encoded.encode())
            aad = context.encode("utf-8")
            if kind == "d":
                data = self._siv(key_id).decrypt(sealed, [aad])
            elif kind == "g":
                data = self._gcm(key_id).decrypt(
                    sealed[:NONCE_BYTES], sealed[NONCE_BYTES:], aad)
            else:
                raise DecryptionError(f"unknown cipher kind {kind!r} in {context}")
            return data.decode("utf-8")
        except (ValueError, binascii.Error, InvalidTag, UnicodeDecodeError) as error:
            raise DecryptionError(f"cannot decrypt a value of {context}: wrong key or "
                                  f"changed data ({type(error).__name__})") from None

    def encrypt_blob(self, data: bytes, *, context: str) -> bytes:
        """``data`` as :data:`BLOB_MAGIC` + key id + nonce + AES-GCM ciphertext."""
        key_id = self.keys.current_id().encode()
        nonce = os.urandom(NONCE_BYTES)
        sealed = self._gcm(key_id.decode()).encrypt(
            nonce, data, context.encode())
        return BLOB_MAGIC + bytes([len(key_id)]) + key_id + nonce + sealed

    def decrypt_blob(self, blob: bytes, *, context: str) -> bytes:
        """The plaintext of a file written by :meth:`encrypt_blob` (others are returned as is).

        Raises:
            DecryptionError: Wrong or missing key, changed bytes, or another context.
        """
        if not blob.startswith(BLOB_MAGIC):
            return blob
        try:
            start = len(BLOB_MAGIC) + 1
            key_id = blob[start:start + blob[len(BLOB_MAGIC)]].decode("ascii")
            body = blob[start + len(key_id):]
            return self._gcm(key_id).decrypt(
                body[:NONCE_BYTES], body[NONCE_BYTES:], context.encode())
        except (IndexError, UnicodeDecodeError, InvalidTag, ValueError) as error:
            raise DecryptionError(f"cannot decrypt {context}: wrong key or changed data "
                                  f"({type(error).__name__})") from None

    def key_id_of_text(self, value: str | None) -> str | None:
        """The key version a text value was encrypted with (None: plaintext or None)."""
        if value is None or not value.startswith(TEXT_PREFIX):
            return None
        return value[len(TEXT_PREFIX):].split(":", 1)[0]

    def key_id_of_blob(self, blob: bytes) -> str | None:
        """The key version a file was encrypted with (None: plaintext).

        Raises:
            DecryptionError: The file is cut off right after its header.
        """
        if not blob.startswith(BLOB_MAGIC):
            return None
        if len(blob) <= len(BLOB_MAGIC):
            raise DecryptionError("encrypted file is truncated: no key version after its header")
        start = len(BLOB_MAGIC) + 1
        return blob[start:start + blob[len(BLOB_MAGIC)]].decode("ascii", "replace")


# -- the process's ciphers -------------------------------------------------------------------


@dataclass
class _DataKeysConfig:
    enabled: bool = True
    home: Path | None = None
    backend: KeyringBackend | None = None
    cached: tuple[tuple[object, ...], Cipher] | None = None


_CONFIGS: dict[str, _DataKeysConfig] = {}


def configure_data_keys(name: str, *, enabled: bool, home: Path | None = None,
                        backend: KeyringBackend | None = None) -> None:
    """Say whether new data of ``name`` is encrypted, and where its keys are.

    Called by the code that opens a database (from ``encrypt_at_rest``). Values and files
    already encrypted are decrypted either way.

    Args:
        name: :data:`STATION_KEYS` or :data:`ENGINE_KEYS`.
        enabled: Encrypt new values and files (False: write plaintext).
        home: The home whose machine key the keyring falls back to (see
            :func:`~skinstation.core.keystore.default_keyring`).
        backend: A keyring to use instead of the default one; without one, a keyring given
            earlier for the same home stays.
    """
    previous = _CONFIGS.get(name)
    if previous is None or previous.home != home:
        _CONFIGS[name] = _DataKeysConfig(enabled, home, backend)
    elif backend is None or backend is previous.backend:  # the same keys: keep them loaded
        previous.enabled = enabled
    else:
        _CONFIGS[name] = _DataKeysConfig(enabled, home, backend)


def encryption_enabled(name: str) -> bool:
    """Whether new data of ``name`` is encrypted (True unless configured off)."""
    return _CONFIGS.setdefault(name, _DataKeysConfig()).enabled


def data_cipher(name: str) -> Cipher:
    """The process's :class:`Cipher` for ``name``, made on first use.

    The keyring is looked up again when its configuration changes (the keyring module's
    backend or the ``SKINSTATION_KEYRING_*`` variables); the keys themselves are read from
    the keyring only when a value needs them.

    Raises:
        KeystoreError: No usable keyring.
    """
    config = _CONFIGS.setdefault(name, _DataKeysConfig())
    signature = (config.backend, config.home, keyring.get_keyring(),
                 *(os.environ.get(variable) for variable in (ENV_FILE, ENV_PASSPHRASE,
                                                             ENV_KEY_FILE)))
    if config.cached is None or config.cached[0] != signature:
        backend = config.backend or default_keyring(home=config.home)
        config.cached = (signature, Cipher(DataKeys(name, backend)))
    return config.cached[1]
