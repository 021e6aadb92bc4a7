"""Encryption at rest: data keys from the keyring, text and file ciphers, rotation."""

from __future__ import annotations

import pytest

from skinstation.core.crypto import BLOB_MAGIC, Cipher, DataKeys, DecryptionError
from skinstation.core.keystore import SECRETS_SERVICE
from tests.conftest import MemoryKeyring


def test_text_round_trip_context_and_tamper(memory_keyring: MemoryKeyring) -> None:
    cipher = Cipher(DataKeys("station-data"))
    sealed = cipher.encrypt_text("Kim Min-jun, 한국어", context="patients.name")
    assert sealed.startswith("enc:v1:g:") and "Kim" not in sealed
    assert cipher.decrypt_text(sealed, context="patients.name") == "Kim Min-jun, 한국어"
    assert cipher.encrypt_text("x", context="c") != cipher.encrypt_text("x", context="c")
    with pytest.raises(DecryptionError, match=r"cannot decrypt a value of labels\.note"):
        cipher.decrypt_text(sealed, context="labels.note")  # moved to another column
    tampered = sealed[:-3] + ("A" if sealed[-3] != "A" else "B") + sealed[-2:]
    with pytest.raises(DecryptionError, match="wrong key or changed data"):
        cipher.decrypt_text(tampered, context="patients.name")
    assert cipher.decrypt_text("P-0001", context="patients.pseudonym") == "P-0001"  # legacy
    assert sorted(memory_keyring.entries) == [(SECRETS_SERVICE, "station-data-current"),
                                              (SECRETS_SERVICE, "station-data-v1")]


def test_deterministic_pseudonyms_are_equal_under_one_key() -> None:
    cipher = Cipher(DataKeys("station-data"))
    first = cipher.encrypt_text("PG-0004", context="patients.pseudonym", deterministic=True)
    assert first.startswith("enc:v1:d:")
    assert first == cipher.encrypt_text("PG-0004", context="patients.pseudonym",
                                        deterministic=True)
    assert first != cipher.encrypt_text("PG-0005", context="patients.pseudonym",
                                        deterministic=True)
    assert cipher.decrypt_text(first, context="patients.pseudonym") == "PG-0004"
    other = Cipher(DataKeys("engine-data"))
    assert other.encrypt_text("PG-0004", context="patients.pseudonym",
                              deterministic=True) != first


def test_rotation_keeps_old_values_readable(memory_keyring: MemoryKeyring) -> None:
    keys = DataKeys("station-data")
    cipher = Cipher(keys)
    old_text = cipher.encrypt_text("note", context="labels.note")
    old_blob = cipher.encrypt_blob(b"\x89PNG image", context="images/ab")
    assert keys.rotate() == "v2" and keys.current_id() == "v2"
    fresh = Cipher(DataKeys("station-data"))  # another process: reads the keyring
    assert fresh.encrypt_text("note", context="labels.note").startswith("enc:v2:g:")
    assert fresh.decrypt_text(old_text, context="labels.note") == "note"
    assert fresh.decrypt_blob(old_blob, context="images/ab") == b"\x89PNG image"
    assert fresh.key_id_of_blob(old_blob) == "v1" and fresh.key_id_of_text(old_text) == "v1"
    del memory_keyring.entries[(SECRETS_SERVICE, "station-data-v1")]
    with pytest.raises(DecryptionError, match="data key station-data v1 is not in the keyring"):
        Cipher(DataKeys("station-data")).decrypt_text(old_text, context="labels.note")


def test_blob_round_trip_and_plain_files() -> None:
    cipher = Cipher(DataKeys("engine-data"))
    data = bytes(range(256)) * 40
    sealed = cipher.encrypt_blob(data, context="images/3f/3f00")
    assert sealed.startswith(BLOB_MAGIC) and data not in sealed
    assert len(sealed) == len(data) + len(BLOB_MAGIC) + 1 + 2 + 12 + 16
    assert cipher.decrypt_blob(sealed, context="images/3f/3f00") == data
    assert cipher.decrypt_blob(data, context="images/3f/3f00") == data  # written before
    with pytest.raises(DecryptionError, match="cannot decrypt images/other"):
        cipher.decrypt_blob(sealed, context="images/other")


def test_a_truncated_file_is_a_clear_error() -> None:
    cipher = Cipher(DataKeys("station-data"))
    sealed = cipher.encrypt_blob(b"image bytes", context="images/ab")
    with pytest.raises(DecryptionError, match="encrypted file is truncated"):
        cipher.key_id_of_blob(BLOB_MAGIC)
    for cut in (len(BLOB_MAGIC), len(BLOB_MAGIC) + 2, len(sealed) - 1):
        with pytest.raises(DecryptionError,
                           match=r"cannot decrypt images/ab|not a key version: 'v'"):
            cipher.decrypt_blob(sealed[:cut], context="images/ab")
