"""SkinStation's encrypted file keyring, for headless stations without a Secret Service.

All entries are kept in one JSON document encrypted with Fernet (AES-128-CBC with an
HMAC-SHA256 tag) in an owner-only file (0600 in a 0700 folder); service and user names are
encrypted too. The key comes from the administrator's passphrase (scrypt; the salt and cost
are in the file) or from a machine key file (a Fernet key, mode 0600) — never from the file
itself. A short key check in the file tells a wrong passphrase or key file apart from a
damaged file. Writers in several processes take an exclusive lock (``<file>.lock``).

The file::

    {"format": "skinstation-keyring", "version": 1,
     "kdf": {"name": "scrypt", "salt": "<base64>", "n": 32768, "r": 8, "p": 1},
     "check": "<16 hex digits>", "data": "<Fernet token>"}

(``"kdf": {"name": "key-file"}`` when a key file holds the key.)
"""

from __future__ import annotations

import base64
import binascii
import fcntl
import hashlib
import hmac
import json
import logging
import os
import secrets
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt
from keyring.backend import KeyringBackend
from keyring.errors import KeyringError, PasswordDeleteError

from skinstation.core.files import (
    PRIVATE_FILE_MODE,
    fsync_directory,
    private_dir,
    private_file,
    write_atomically,
)

log = logging.getLogger(__name__)

FORMAT = "skinstation-keyring"
VERSION = 1
SCRYPT_N, SCRYPT_R, SCRYPT_P = 2**15, 8, 1
MIN_PASSPHRASE_LENGTH = 10
_CHECK_LABEL = b"skinstation keyring key check"

Entries = dict[str, dict[str, str]]


class KeystoreError(KeyringError):
    """The keyring or its key cannot be used; the message says why and what to do."""


class WrongKeyError(KeystoreError):
    """The passphrase or key file is not the one the keyring file was encrypted with."""


def create_key_file(path: Path) -> Path:
    """Write a new random machine key (a Fernet key) to ``path``, owner-only.

    Raises:
        KeystoreError: ``path`` exists already.
    """
    path = Path(path).expanduser()
    private_dir(path.parent)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, PRIVATE_FILE_MODE)
    except FileExistsError:
        raise KeystoreError(f"key file {path} exists already; it is not replaced") from None
    with os.fdopen(fd, "wb") as handle:
        handle.write(Fernet.generate_key() + b"\n")
        handle.flush()
        os.fsync(handle.fileno())
    fsync_directory(path.parent)
    log.info("created the machine key file %s", path)
    return path


def read_key_file(path: Path) -> bytes:
    """The Fernet key in a machine key file, after making the file owner-only.

    Raises:
        KeystoreError: Missing, not owner-only and not fixable, or not a key.
    """
    try:
        private_file(path)
        data = path.read_bytes().strip()
    except FileNotFoundError:
        raise KeystoreError(f"key file {path} not found") from None
    except OSError as error:
        raise KeystoreError(f"cannot use key file {path}: {error}") from error
    try:
        valid = len(base64.urlsafe_b64decode(data)) == 32 and len(data) == 44
    except (binascii.Error, ValueError):
        valid = False
    if not valid:
        raise KeystoreError(f"key file {path} does not hold a key (44 characters of url-safe "
                            "base64, as create_key_file writes)")
    return data


def _check_value(key: bytes) -> str:
    return hmac.new(key, _CHECK_LABEL, hashlib.sha256).hexdigest()[:16]


class EncryptedFileKeyring(KeyringBackend):
    """A keyring backend keeping its entries encrypted in one owner-only file.

    Args:
        path: The keyring file (created, with its folder, on the first write).
        passphrase: The administrator's passphrase (at least ten characters), or
        key_file: a machine key file (created owner-only if neither it nor the keyring file
            exists yet). Exactly one of the two.

    Raises:
        KeystoreError: Neither or both keys, or a passphrase that is too short.
    """

    priority = 1  # never detected by keyring itself: an instance needs a path and a key

    def __init__(self, path: Path, *, passphrase: str | None = None,
                 key_file: Path | None = None) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        if (passphrase is None) == (key_file is None):
            raise KeystoreError("the encrypted file keyring needs a passphrase or a key file "
                                "(exactly one)")
        if passphrase is not None and len(passphrase) < MIN_PASSPHRASE_LENGTH:
            raise KeystoreError(f"the keyring passphrase must have at least "
                                f"{MIN_PASSPHRASE_LENGTH} characters")
        self.path = Path(path).expanduser()
        self.key_file = None if key_file is None else Path(key_file).expanduser()
        self._passphrase = passphrase
        self._derived: dict[tuple[bytes, int, int, int], bytes] = {}

    @property
    def file_path(self) -> str:
        """The keyring file (as keyring's own file backends name it)."""
        return str(self.path)

    def __repr__(self) -> str:
        source = "passphrase" if self.key_file is None else f"key file {self.key_file}"
        return f"EncryptedFileKeyring({self.path}, {source})"

    # -- the keyring API ---------------------------------------------------------------------

    def get_password(self, service: str, username: str) -> str | None:
        """The stored secret, or ``None``.

        Raises:
            KeystoreError: The file cannot be read or decrypted (wrong key, damaged).
        """
        with self._locked():
            entries, _ = self._read()
        return entries.get(service, {}).get(username)

    def set_password(self, service: str, username: str, password: str) -> None:
        """Store (replace) a secret."""
        with self._locked():
            entries, kdf = self._read()
            entries.setdefault(service, {})[username] = password
            self._write(entries, kdf)

    def delete_password(self, service: str, username: str) -> None:
        """Forget a secret.

        Raises:
            PasswordDeleteError: There is no such entry.
        """
        with self._locked():
            entries, kdf = self._read()
            if username not in entries.get(service, {}):
                raise PasswordDeleteError(f"no keyring entry {service}/{username}")
            del entries[service][username]
            if not entries[service]:
                del entries[service]
            self._write(entries, kdf)

    def get_or_set_password(self, service: str, username: str, make: Callable[[], str]) -> str:
        """The stored secret, or ``make()`` stored first (one step under the file lock)."""
        with self._locked():
            entries, kdf = self._read()
            stored = entries.get(service, {}).get(username)
            if stored is None:
                stored = make()
                entries.setdefault(service, {})[username] = stored
                self._write(entries, kdf)
        return stored

    # -- the file ----------------------------------------------------------------------------

    @contextmanager
    def _locked(self) -> Iterator[None]:
        try:
            private_dir(self.path.parent)
            private_file(self.path)
            lock = self.path.with_name(self.path.name + ".lock")
            fd = os.open(lock, os.O_RDWR | os.O_CREAT, PRIVATE_FILE_MODE)
        except OSError as error:
            raise KeystoreError(f"cannot use the keyring file {self.path}: {error}") from error
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)

    def _read(self) -> tuple[Entries, dict[str, Any]]:
        try:
            raw = self.path.read_bytes()
        except FileNotFoundError:
            return {}, self._new_kdf()
        except OSError as error:
            raise KeystoreError(f"cannot read the keyring file {self.path}: {error}") from error
        try:
            document = json.loads(raw)
            if document.get("format") != FORMAT or document.get("version") != VERSION:
                raise ValueError("unknown format")
            kdf, check, token = document["kdf"], document["check"], document["data"]
        except (ValueError, KeyError, TypeError, AttributeError):
            raise KeystoreError(f"{self.path} is not a SkinStation keyring file "
                                f"(format {FORMAT} version {VERSION})") from None
        key = self._key(kdf, creating=False)
        if not hmac.compare_digest(str(check), _check_value(key)):
            used = "passphrase" if kdf.get("name") == "scrypt" else "key file"
            raise WrongKeyError(f"wrong {used} for the keyring file {self.path}: it was "
                                f"encrypted with another {used}")
        try:
            entries = json.loads(Fernet(key).decrypt(str(token).encode("ascii")))
        except (InvalidToken, ValueError):
            raise KeystoreError(f"the keyring file {self.path} is damaged: it does not decrypt "
                                "with its key; restore it from a backup or re-enroll") from None
        if not isinstance(entries, dict) or not all(
                isinstance(users, dict) and all(isinstance(v, str) for v in users.values())
                for users in entries.values()):
            raise KeystoreError(f"the keyring file {self.path} holds no keyring entries")
        return entries, kdf

    def _write(self, entries: Entries, kdf: dict[str, Any]) -> None:
        key = self._key(kdf, creating=not self.path.exists())
        document = {"format": FORMAT, "version": VERSION, "kdf": kdf, "check": _check_value(key),
                    "data": Fernet(key).encrypt(json.dumps(entries).encode()).decode("ascii")}
        try:
            write_atomically(self.path, json.dumps(document).encode())
        except OSError as error:
            raise KeystoreError(f"cannot write the keyring file {self.path}: {error}") from error

    def _new_kdf(self) -> dict[str, Any]:
        if self._passphrase is None:
            return {"name": "key-file"}
        salt = base64.b64encode(secrets.token_bytes(16)).decode("ascii")
        return {"name": "scrypt", "salt": salt, "n": SCRYPT_N, "r": SCRYPT_R, "p": SCRYPT_P}

    def _key(self, kdf: dict[str, Any], *, creating: bool) -> bytes:
        name = kdf.get("name")
        if name == "key-file":
            if self.key_file is None:
                raise KeystoreError(f"the keyring file {self.path} is encrypted with a key "
                                    "file, but a passphrase was given")
            if creating and not self.key_file.exists():
                create_key_file(self.key_file)
            return read_key_file(self.key_file)
        if name != "scrypt":
            raise KeystoreError(f"the keyring file {self.path} names an unknown key ({name!r})")
        if self._passphrase is None:
            raise KeystoreError(f"the keyring file {self.path} is encrypted with a passphrase, "
                                "but a key file was given")
        try:
            salt = base64.b64decode(kdf["salt"], validate=True)
            cost = (int(kdf["n"]), int(kdf["r"]), int(kdf["p"]))
        except (KeyError, ValueError, TypeError, binascii.Error):
            raise KeystoreError(f"the keyring file {self.path} has a damaged key "
                                "derivation record") from None
        cached = self._derived.get((salt, *cost))
        if cached is None:
            derived = Scrypt(salt=salt, length=32, n=cost[0], r=cost[1], p=cost[2]).derive(
                self._passphrase.encode("utf-8"))
            cached = self._derived[(salt, *cost)] = base64.urlsafe_b64encode(derived)
        return cached
