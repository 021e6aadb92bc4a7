"""The station's engine credential, kept only in a secure keyring.

The bearer token and the engine's public signing key pinned at enrollment are stored as one
JSON entry under service ``skinstation-sync`` and user = the station's ``station_id`` — never in
the station database or the settings file. The keyring is the OS one (Secret Service, macOS
Keychain, Windows Credential Locker) or, on a headless station, SkinStation's encrypted file
keyring (see :mod:`skinstation.core.keystore`); plaintext, fail and null keyrings are refused.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass

from keyring.backend import KeyringBackend
from keyring.errors import KeyringError, PasswordDeleteError

from skinstation.core.i18n import KeyedError
from skinstation.core.keystore import default_keyring, require_secure

SERVICE = "skinstation-sync"


class CredentialError(KeyedError, RuntimeError):
    """The keyring is unavailable or holds an unreadable entry (a text key, ``error.sync.*``)."""


@dataclass(frozen=True)
class StationCredential:
    """What enrollment gave the station.

    Attributes:
        engine_url: The engine's base URL.
        station_id: The engine's id for this station.
        station_name: The name the administrator gave it.
        token: Bearer token (secret).
        public_key: The engine's Ed25519 public key (base64), pinned.
        key_id: Its fingerprint.
    """

    engine_url: str
    station_id: int
    station_name: str
    token: str
    public_key: str
    key_id: str

    def __repr__(self) -> str:
        return (f"StationCredential(engine_url={self.engine_url!r}, station_id="
                f"{self.station_id}, key_id={self.key_id!r}, token=<hidden>)")


class CredentialStore:
    """Read and write the station credential in a keyring.

    Args:
        station_ref: The station's ``station_id`` setting (the keyring user name).
        backend: A keyring backend (refused if insecure); SkinStation's default keyring
            (:func:`~skinstation.core.keystore.default_keyring`) if None.
    """

    def __init__(self, station_ref: str, backend: KeyringBackend | None = None) -> None:
        self.station_ref = station_ref
        self.backend = backend

    def _keyring(self) -> KeyringBackend:
        return default_keyring() if self.backend is None else require_secure(self.backend)

    def load(self) -> StationCredential | None:
        """The stored credential, or ``None`` if the station is not enrolled.

        Raises:
            CredentialError: The keyring fails or the entry is not a credential.
        """
        try:
            raw = self._keyring().get_password(SERVICE, self.station_ref)
        except KeyringError as error:
            raise CredentialError("error.sync.keyring", reason=str(error)) from error
        if raw is None:
            return None
        try:
            return StationCredential(**json.loads(raw))
        except (ValueError, TypeError) as error:
            raise CredentialError("error.sync.keyring_entry",
                                  entry=f"{SERVICE}/{self.station_ref}") from error

    def save(self, credential: StationCredential) -> None:
        """Store (replace) the credential.

        Raises:
            CredentialError: The keyring refuses it.
        """
        try:
            self._keyring().set_password(SERVICE, self.station_ref,
                                         json.dumps(asdict(credential)))
        except KeyringError as error:
            raise CredentialError("error.sync.keyring_store", reason=str(error)) from error

    def delete(self) -> None:
        """Forget the credential (a no-op if there is none)."""
        try:
            self._keyring().delete_password(SERVICE, self.station_ref)
        except PasswordDeleteError:
            return
        except KeyringError as error:
            raise CredentialError("error.sync.keyring", reason=str(error)) from error
