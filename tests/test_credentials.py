"""The station credential and other secrets: a secure keyring, the machine-key fallback, or a
clear refusal."""

from __future__ import annotations

import base64
import json
import logging
import os
import re
import stat
from pathlib import Path

import keyring
import pytest
from keyring.backend import KeyringBackend
from keyring.backends import fail, null

from skinstation.core.keyring_file import EncryptedFileKeyring, KeystoreError, WrongKeyError
from skinstation.core.keystore import (
    HOW_TO,
    SECRETS_SERVICE,
    InsecureKeyringError,
    default_keyring,
    get_or_create_secret,
    keyring_file_path,
)
from skinstation.sync.credentials import (
    SERVICE,
    CredentialError,
    CredentialStore,
    StationCredential,
)
from tests.conftest import MemoryKeyring

PASSPHRASE = "correct horse battery staple"
CREDENTIAL = StationCredential(
    engine_url="https://engine.example:8443", station_id=7, station_name="North clinic",
    token="st_9f2c1d7e5b3a4c6d8e0f1a2b3c4d5e6f", public_key="cHVibGljLWtleQ==",
    key_id="k-1234")


class JsonFileKeyring(KeyringBackend):
    """A plaintext file keyring, as keyrings.alt's PlaintextKeyring is (priority 0.5)."""

    priority = 0.5

    def __init__(self, path: Path | None = None) -> None:
        super().__init__()
        self.path = path or Path(os.devnull)

    def _entries(self) -> dict[str, str]:
        return json.loads(self.path.read_text()) if self.path.is_file() else {}

    def get_password(self, service: str, username: str) -> str | None:
        return self._entries().get(f"{service}/{username}")

    def set_password(self, service: str, username: str, password: str) -> None:
        self.path.write_text(json.dumps({**self._entries(), f"{service}/{username}": password}))

    def delete_password(self, service: str, username: str) -> None:
        raise NotImplementedError


def _refusal(backend_name: str, reason: str) -> str:
    return f"refusing the keyring backend {backend_name}: {reason}; {HOW_TO}"


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.mark.parametrize(("backend", "name", "reason"), [
    (fail.Keyring(), "keyring.backends.fail.Keyring",
     "no keyring backend is available (keyring's 'fail' keyring)"),
    (null.Keyring(), "keyring.backends.null.Keyring", "the 'null' keyring stores nothing"),
    (JsonFileKeyring(), f"{__name__}.JsonFileKeyring",
     "keyring rates it not recommended (priority 0.5 < 1): plaintext or weakly protected"),
])
def test_without_a_secure_os_keyring_secrets_fall_back_to_the_machine_key_file(
    backend: KeyringBackend, name: str, reason: str, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture,
) -> None:
    home = tmp_path / "home"
    monkeypatch.setenv("SKINSTATION_HOME", str(home))
    keyring.set_keyring(backend)  # the keyring's default backend on this machine

    with caplog.at_level(logging.WARNING, logger="skinstation.core.keystore"):
        assert CredentialStore("station-1").load() is None
        CredentialStore("station-1").save(CREDENTIAL)
        secret = get_or_create_secret("station-data-key")
        assert CredentialStore("station-1").load() == CREDENTIAL

    key_file, ring_file = home / "keys" / "machine.key", home / "keys" / "keyring.enc"
    assert (_mode(key_file), _mode(key_file.parent), _mode(ring_file)) == (0o600, 0o700, 0o600)
    assert CREDENTIAL.token.encode() not in ring_file.read_bytes()
    assert base64.b64encode(secret) not in ring_file.read_bytes()
    assert EncryptedFileKeyring(ring_file, key_file=key_file).get_password(
        SECRETS_SERVICE, "station-data-key") == base64.b64encode(secret).decode()
    assert [r.getMessage() for r in caplog.records if r.name == "skinstation.core.keystore"] == [
        f"refusing the keyring backend {name}: {reason}; keeping SkinStation's secrets in its "
        f"encrypted file keyring keyed by the machine key file {key_file} (created if missing, "
        "owner-only). This protects copies of the database, images or backups made without "
        "that key file, not someone who can read this home folder. For stronger protection "
        "use the OS keyring, or set SKINSTATION_KEYRING_PASSPHRASE (the administrator's "
        "passphrase)."]
    with pytest.raises(InsecureKeyringError) as refused:  # given explicitly: still refused
        get_or_create_secret("station-data-key", backend=backend)
    assert str(refused.value) == _refusal(name, reason)


def test_a_plaintext_keyring_given_explicitly_is_refused_and_writes_nothing(
    tmp_path: Path
) -> None:
    path = tmp_path / "keyring_pass.cfg"
    store = CredentialStore("station-1", JsonFileKeyring(path))

    with pytest.raises(CredentialError, match=re.escape(
            "priority 0.5 < 1): plaintext or weakly protected; use the OS keyring")):
        store.save(CREDENTIAL)

    assert not path.exists()


def test_encrypted_file_keyring_round_trip_keeps_the_token_out_of_the_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    keyring.set_keyring(fail.Keyring())  # a headless station: no Secret Service
    path = tmp_path / "secure" / "keyring.enc"
    monkeypatch.setenv("SKINSTATION_KEYRING_FILE", str(path))
    monkeypatch.setenv("SKINSTATION_KEYRING_PASSPHRASE", PASSPHRASE)
    store = CredentialStore("station-1")  # SkinStation's default keyring

    assert store.load() is None
    store.save(CREDENTIAL)

    assert store.load() == CREDENTIAL
    fresh = EncryptedFileKeyring(path, passphrase=PASSPHRASE)  # another process's reader
    assert json.loads(fresh.get_password(SERVICE, "station-1") or "") == {
        "engine_url": "https://engine.example:8443", "station_id": 7,
        "station_name": "North clinic", "token": CREDENTIAL.token,
        "public_key": "cHVibGljLWtleQ==", "key_id": "k-1234"}
    content = path.read_bytes()
    for secret in (CREDENTIAL.token, "North clinic", SERVICE, "station-1", PASSPHRASE):
        assert secret.encode() not in content
    document = json.loads(content)
    assert (document["format"], document["version"], document["kdf"]["name"]) == (
        "skinstation-keyring", 1, "scrypt")
    assert (_mode(path), _mode(path.parent), _mode(path.with_name("keyring.enc.lock"))) == (
        0o600, 0o700, 0o600)
    store.delete()
    assert (store.load(), fresh.get_password(SERVICE, "station-1")) == (None, None)


def test_wrong_passphrase_is_a_clear_error_and_changes_nothing(tmp_path: Path) -> None:
    path = tmp_path / "keyring.enc"
    CredentialStore("station-1", EncryptedFileKeyring(path, passphrase=PASSPHRASE)).save(
        CREDENTIAL)
    before = path.read_bytes()
    wrong = CredentialStore("station-1",
                            EncryptedFileKeyring(path, passphrase="not the passphrase"))

    with pytest.raises(CredentialError) as loading:
        wrong.load()
    with pytest.raises(CredentialError) as saving:
        wrong.save(CREDENTIAL)

    message = (f"wrong passphrase for the keyring file {path}: it was encrypted with another "
               "passphrase")
    assert str(loading.value) == f"keyring unavailable: {message}"
    assert str(saving.value) == f"cannot store the credential in the keyring: {message}"
    assert path.read_bytes() == before
    assert CredentialStore("station-1", EncryptedFileKeyring(path, passphrase=PASSPHRASE)
                           ).load() == CREDENTIAL


def test_a_damaged_or_foreign_keyring_file_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "keyring.enc"
    ring = EncryptedFileKeyring(path, passphrase=PASSPHRASE)
    ring.set_password(SERVICE, "station-1", "secret")
    document = json.loads(path.read_text())
    token = document["data"]
    document["data"] = token[:-8] + ("A" if token[-8] != "A" else "B") + token[-7:]
    path.write_text(json.dumps(document))

    with pytest.raises(KeystoreError, match=re.escape(
            f"the keyring file {path} is damaged: it does not decrypt with its key; restore "
            "it from a backup or re-enroll")):
        ring.get_password(SERVICE, "station-1")
    path.write_text("[section]\nkey = plaintext\n")
    with pytest.raises(KeystoreError, match=re.escape(
            f"{path} is not a SkinStation keyring file (format skinstation-keyring version 1)")):
        ring.get_password(SERVICE, "station-1")


def test_machine_key_file_is_created_owner_only_and_a_loose_one_is_fixed(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    key_file = tmp_path / "etc" / "machine.key"
    path = tmp_path / "home" / "keys" / "keyring.enc"
    EncryptedFileKeyring(path, key_file=key_file).set_password(SERVICE, "station-1", "tok-1")

    assert (_mode(key_file), _mode(key_file.parent), len(key_file.read_bytes().strip())) == (
        0o600, 0o700, 44)
    assert key_file.read_bytes().strip() not in path.read_bytes()
    os.chmod(key_file, 0o644)
    with caplog.at_level(logging.WARNING, logger="skinstation.core.files"):
        assert EncryptedFileKeyring(path, key_file=key_file).get_password(
            SERVICE, "station-1") == "tok-1"
    assert [r.getMessage() for r in caplog.records] == [
        f"fixed permissions of {key_file}: 0644 -> 0600 (owner-only)"]
    assert _mode(key_file) == 0o600

    other = tmp_path / "other.key"
    other.write_bytes(base64.urlsafe_b64encode(b"k" * 32))
    with pytest.raises(WrongKeyError, match=re.escape(
            f"wrong key file for the keyring file {path}: it was encrypted with another key "
            "file")):
        EncryptedFileKeyring(path, key_file=other).get_password(SERVICE, "station-1")
    with pytest.raises(KeystoreError, match=re.escape(
            f"the keyring file {path} is encrypted with a key file, but a passphrase was given")):
        EncryptedFileKeyring(path, passphrase=PASSPHRASE).get_password(SERVICE, "station-1")
    key_file.unlink()
    with pytest.raises(KeystoreError, match=re.escape(f"key file {key_file} not found")):
        EncryptedFileKeyring(path, key_file=key_file).get_password(SERVICE, "station-1")
    assert not key_file.exists()  # an existing keyring never gets a new key


def test_keyring_configuration_errors_are_clear(tmp_path: Path) -> None:
    with pytest.raises(KeystoreError, match=r"^set only one of SKINSTATION_KEYRING_PASSPHRASE "
                       r"and SKINSTATION_KEYRING_KEY_FILE$"):
        default_keyring(env={"SKINSTATION_KEYRING_PASSPHRASE": PASSPHRASE,
                             "SKINSTATION_KEYRING_KEY_FILE": str(tmp_path / "k")})
    with pytest.raises(KeystoreError, match=r"^the keyring passphrase must have at least 10 "
                       r"characters$"):
        default_keyring(env={"SKINSTATION_KEYRING_PASSPHRASE": "short"})
    assert keyring_file_path(env={}, home=tmp_path) == tmp_path / "keys" / "keyring.enc"
    assert keyring_file_path(env={"SKINSTATION_HOME": str(tmp_path / "h")}) == (
        tmp_path / "h" / "keys" / "keyring.enc")


def test_get_or_create_secret_is_stable_across_readers(
    tmp_path: Path, memory_keyring: MemoryKeyring
) -> None:
    first = get_or_create_secret("station-data-key")  # the suite's in-memory keyring

    assert len(first) == 32 and get_or_create_secret("station-data-key") == first
    assert memory_keyring.entries == {
        (SECRETS_SERVICE, "station-data-key"): base64.b64encode(first).decode()}
    assert get_or_create_secret("engine-data-key") != first

    path = tmp_path / "keyring.enc"
    created = get_or_create_secret("station-data-key",
                                   backend=EncryptedFileKeyring(path, passphrase=PASSPHRASE))
    again = get_or_create_secret("station-data-key",
                                 backend=EncryptedFileKeyring(path, passphrase=PASSPHRASE))
    assert again == created and len(created) == 32
    assert base64.b64encode(created) not in path.read_bytes()
    memory_keyring.entries[(SECRETS_SERVICE, "broken")] = "not base64!"
    with pytest.raises(KeystoreError, match=re.escape(
            "keyring entry skinstation-secrets/broken is not a secret (base64)")):
        get_or_create_secret("broken")
    assert memory_keyring.entries[(SECRETS_SERVICE, "broken")] == "not base64!"
