"""Which keyring holds SkinStation's secrets, and the secrets other rooms ask it for.

Secrets (the station's engine credential, data keys for encryption at rest) live in the OS
keyring — the Secret Service (GNOME Keyring, KWallet), macOS Keychain or Windows Credential
Locker — when there is one. A headless station uses SkinStation's
:class:`~skinstation.core.keyring_file.EncryptedFileKeyring` instead, keyed by the
administrator's passphrase (``SKINSTATION_KEYRING_PASSPHRASE``) or by a machine key file
(``SKINSTATION_KEYRING_KEY_FILE``, mode 0600, created on first use if missing), in
``SKINSTATION_KEYRING_FILE`` (default ``<home>/keys/keyring.enc``). Setting either key selects
the encrypted file keyring even where a Secret Service runs.

Keyrings that protect nothing are refused with :class:`InsecureKeyringError`: keyring's
``fail`` and ``null`` backends, the keyrings.alt plaintext family, and any backend keyring
itself rates "not recommended" (priority below 1). Tests install their own in-memory keyring.

When nothing is configured and the OS keyring is missing or refused (a headless machine),
:func:`default_keyring` falls back to the encrypted file keyring keyed by a machine key file
``<home>/keys/machine.key`` (created on first use, 0600 in a 0700 folder), with one logged
warning: as if ``SKINSTATION_KEYRING_KEY_FILE`` named that file. It protects the secrets (and
so the data encrypted at rest) in copies of the database, images or backups made without the
key file, not against someone who can read the home folder as the station's user.
"""

from __future__ import annotations

import base64
import binascii
import functools
import logging
import os
import secrets
from collections.abc import Mapping
from pathlib import Path

import keyring
from keyring.backend import KeyringBackend
from keyring.backends import chainer, fail, null
from keyring.errors import KeyringError

from skinstation.core.keyring_file import EncryptedFileKeyring, KeystoreError
from skinstation.settings import Settings

ENV_FILE = "SKINSTATION_KEYRING_FILE"
ENV_PASSPHRASE = "SKINSTATION_KEYRING_PASSPHRASE"  # noqa: S105 (a variable name)
ENV_KEY_FILE = "SKINSTATION_KEYRING_KEY_FILE"
log = logging.getLogger(__name__)

SECRETS_SERVICE = "skinstation-secrets"
"""The keyring service under which :func:`get_or_create_secret` keeps its secrets."""
SECRET_BYTES = 32
MACHINE_KEY_FILE = "machine.key"
"""The fallback machine key: ``<home>/keys/machine.key``."""

HOW_TO = ("use the OS keyring (the Secret Service: GNOME Keyring or KWallet; macOS Keychain; "
          "Windows Credential Locker), or on a headless station set "
          f"{ENV_PASSPHRASE} (the administrator's passphrase) or {ENV_KEY_FILE} (a machine "
          "key file, mode 0600) to use SkinStation's encrypted file keyring")


class InsecureKeyringError(KeystoreError):
    """The keyring backend would not protect secrets (plaintext, fail or null keyring)."""


def _name(backend: KeyringBackend) -> str:
    kind = type(backend)
    return f"{kind.__module__}.{kind.__qualname__}"


def refusal_reason(backend: KeyringBackend) -> str | None:
    """Why ``backend`` may not hold SkinStation's secrets, or ``None`` if it may."""
    if isinstance(backend, EncryptedFileKeyring):
        return None
    if isinstance(backend, fail.Keyring):
        return "no keyring backend is available (keyring's 'fail' keyring)"
    if isinstance(backend, null.Keyring):
        return "the 'null' keyring stores nothing"
    if type(backend).__module__.startswith("keyrings.alt"):
        return "keyrings.alt keeps secrets in plaintext or weakly protected files"
    try:
        priority = float(backend.priority)
    except Exception as error:  # keyring backends raise anything when unusable
        return f"it is unavailable ({error})"
    if priority < 1:
        return (f"keyring rates it not recommended (priority {priority:g} < 1): plaintext or "
                "weakly protected")
    return None


def require_secure(backend: KeyringBackend) -> KeyringBackend:
    """Return ``backend`` if it protects secrets (for a chain: its first backend that does).

    Raises:
        InsecureKeyringError: It is a plaintext, fail or null keyring (the message names it
            and says what to use instead).
    """
    if isinstance(backend, chainer.ChainerBackend):
        chained: list[KeyringBackend] = list(backend.backends)
        for candidate in chained:
            if refusal_reason(candidate) is None:
                return candidate
        if chained:
            backend = chained[0]
    reason = refusal_reason(backend)
    if reason is not None:
        raise InsecureKeyringError(f"refusing the keyring backend {_name(backend)}: {reason}; "
                                   f"{HOW_TO}")
    return backend


def keyring_file_path(env: Mapping[str, str] | None = None, home: Path | None = None) -> Path:
    """Where the encrypted file keyring lives: ``SKINSTATION_KEYRING_FILE`` or under the home.

    Raises:
        KeystoreError: No path is set and the settings cannot be read to find the home.
    """
    env = os.environ if env is None else env
    if env.get(ENV_FILE):
        return Path(env[ENV_FILE]).expanduser()
    if home is None:
        try:
            home = Settings.load(env=env).home
        except (OSError, ValueError) as error:
            raise KeystoreError(f"cannot read the settings to find the keyring file ({error}); "
                                f"set {ENV_FILE}") from error
    return Path(home) / "keys" / "keyring.enc"


@functools.lru_cache(maxsize=8)
def _file_keyring(path: Path, passphrase: str | None, key_file: Path | None
                  ) -> EncryptedFileKeyring:
    # One instance per configuration, so the passphrase is stretched once per process.
    return EncryptedFileKeyring(path, passphrase=passphrase, key_file=key_file)


def default_keyring(env: Mapping[str, str] | None = None,
                    home: Path | None = None) -> KeyringBackend:
    """The keyring SkinStation keeps secrets in (see the module docstring for the choice).

    Args:
        env: Environment to read ``SKINSTATION_KEYRING_*`` from (``os.environ`` if None).
        home: Station home for the default keyring file (from the settings if None).

    Raises:
        KeystoreError: Both a passphrase and a key file are set, or one is unusable; the
            keyring configuration cannot be loaded; or the OS keyring is missing or insecure
            and the fallback machine key cannot be used (see the module docstring).
    """
    env = os.environ if env is None else env
    passphrase = env.get(ENV_PASSPHRASE) or None
    key_file = env.get(ENV_KEY_FILE) or None
    if passphrase is not None and key_file is not None:
        raise KeystoreError(f"set only one of {ENV_PASSPHRASE} and {ENV_KEY_FILE}")
    if passphrase is not None or key_file is not None:
        return _file_keyring(keyring_file_path(env, home), passphrase,
                             None if key_file is None else Path(key_file).expanduser())
    try:
        backend = keyring.get_keyring()
    except Exception as error:  # a broken PYTHON_KEYRING_BACKEND or keyringrc.cfg
        raise KeystoreError(f"the keyring cannot be loaded: {error}; {HOW_TO}") from error
    try:
        return require_secure(backend)
    except InsecureKeyringError as refusal:
        path = keyring_file_path(env, home)
        machine_key = path.parent / MACHINE_KEY_FILE
        _warn_machine_key(str(refusal).split(";", 1)[0], machine_key)
        return _file_keyring(path, None, machine_key)


@functools.lru_cache(maxsize=8)
def _warn_machine_key(reason: str, key_file: Path) -> None:
    # lru_cache: one warning per process and key file, however often the keyring is asked for
    log.warning(
        "%s; keeping SkinStation's secrets in its encrypted file keyring keyed by the machine "
        "key file %s (created if missing, owner-only). This protects copies of the database, "
        "images or backups made without that key file, not someone who can read this home "
        "folder. For stronger protection use the OS keyring, or set %s (the administrator's "
        "passphrase).", reason, key_file, ENV_PASSPHRASE)


def get_or_create_secret(name: str, *, backend: KeyringBackend | None = None,
                         size: int = SECRET_BYTES) -> bytes:
    """A random secret kept in the keyring, created on first use (e.g. a data key).

    The secret is stored base64-encoded under service ``skinstation-secrets``, user ``name``.

    Args:
        name: What the secret is for, e.g. ``"station-data-key"``.
        backend: The keyring (checked with :func:`require_secure`); :func:`default_keyring`
            if None.
        size: Length in bytes of a new secret; a stored one must have it too.

    Returns:
        The secret's bytes (the same on every call and in every process).

    Raises:
        KeystoreError: No secure keyring, it fails, or its entry is not a secret of ``size``
            bytes (it is never overwritten).
    """
    if not name:
        raise KeystoreError("a secret needs a name")
    ring = default_keyring() if backend is None else require_secure(backend)

    def make() -> str:
        return base64.b64encode(secrets.token_bytes(size)).decode("ascii")

    try:
        if isinstance(ring, EncryptedFileKeyring):
            stored: str | None = ring.get_or_set_password(SECRETS_SERVICE, name, make)
        else:
            stored = ring.get_password(SECRETS_SERVICE, name)
            if stored is None:
                ring.set_password(SECRETS_SERVICE, name, make())
                stored = ring.get_password(SECRETS_SERVICE, name)  # a racing writer's wins
    except KeystoreError:
        raise
    except KeyringError as error:
        raise KeystoreError(f"keyring unavailable: {error}") from error
    if stored is None:
        raise KeystoreError(f"the keyring did not keep the secret {SECRETS_SERVICE}/{name}")
    try:
        value = base64.b64decode(stored, validate=True)
    except (binascii.Error, ValueError):
        raise KeystoreError(f"keyring entry {SECRETS_SERVICE}/{name} is not a secret "
                            "(base64)") from None
    if len(value) != size:
        raise KeystoreError(f"keyring entry {SECRETS_SERVICE}/{name} holds a {len(value)}-byte "
                            f"secret, expected {size}")
    return value
