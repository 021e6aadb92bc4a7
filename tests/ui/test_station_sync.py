"""The station window's sync source: the real SyncRunner behind the panel's protocol."""

import keyring
import pytest

from skinstation.services.station import StationService
from skinstation.sync.credentials import CredentialStore, StationCredential
from skinstation.ui.station_sync import StationSync
from tests.test_engine_helpers import file_keyring


@pytest.fixture()
def isolated_keyring(tmp_path):
    previous = keyring.get_keyring()
    backend = file_keyring(tmp_path / "keyring" / "keyring_pass.cfg")
    keyring.set_keyring(backend)
    yield backend
    keyring.set_keyring(previous)


def test_status_before_and_after_the_database_opens(settings, tiny_model, isolated_keyring):
    service = None
    sync = StationSync(lambda: service)
    assert sync.status().last_error == "The station database is still opening."
    service = StationService(settings.replace(model_path=tiny_model))
    status = sync.status()
    assert status.queue_length == 0
    assert status.last_error == "Sync not configured: no engine URL in the settings."
    sync.stop()


def test_not_enrolled_then_enrolled(settings, tiny_model, isolated_keyring):
    import dataclasses
    configured = settings.replace(
        model_path=tiny_model,
        sync=dataclasses.replace(settings.sync, engine_url="https://127.0.0.1:9",
                                 interval_seconds=3600))
    service = StationService(configured)
    sync = StationSync(lambda: service)
    try:
        assert sync.status().last_error.startswith("Not enrolled")
        CredentialStore(configured.station_id).save(StationCredential(
            "https://127.0.0.1:9", 7, "clinic-1", "secret-token", "cHVibGlj", "kid"))
        status = sync.status()
        assert status.enrolled is True and status.engine_url == "https://127.0.0.1:9"
    finally:
        sync.stop()
