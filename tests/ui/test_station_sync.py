"""The station window's sync source: the real SyncRunner behind the panel's protocol, and the
sync panel's refused captures with their "Retry refused" button."""

import datetime as dt

import keyring
import pytest

from skinstation.services.station import StationService
from skinstation.sync.credentials import CredentialStore, StationCredential
from skinstation.ui.station_sync import StationSync
from tests.test_engine_helpers import file_keyring

T0 = dt.datetime(2026, 1, 5, 9, 0, tzinfo=dt.UTC)


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


def _refused_capture(service: StationService, reason: str) -> int:
    """A real capture whose outbox entry the engine refused (set aside)."""
    import numpy as np
    from sqlalchemy import select

    from skinstation.storage import Operator, Outbox, StationStore

    with service.database.transaction() as session:
        nurse = session.scalar(select(Operator.id).where(Operator.username == "nurse"))
    store = StationStore(service.database)
    visit = store.open_visit(store.create_patient("P-ui-1", actor_id=nurse).id,
                             operator_id=nurse)
    capture = store.save_capture(visit.id, np.full((8, 8, 3), 90, np.uint8), band="white",
                                 body_site="back", device_id="cam", operator_id=nurse,
                                 access_time=T0, capture_time=T0)
    outbox = Outbox(service.database)
    outbox.mark_sent(capture.id)
    outbox.mark_refused(capture.id, reason)
    return capture.id


def test_sync_panel_shows_refused_captures_and_the_admin_retries_them(qtbot, make_window,
                                                                      station, isolated_keyring):
    from PySide6.QtCore import Qt
    from sqlalchemy import select

    from skinstation.auth import PermissionDeniedError
    from skinstation.storage import AuditEvent, OutboxEntry
    from tests.ui.helpers import PASSWORD, TIMEOUT, log_in

    window = make_window(station)
    log_in(qtbot, window, "admin")
    service = window.ctx.require_service()
    reason = "engine refused (422): pseudonym must not contain control characters"
    capture_id = _refused_capture(service, reason)
    sync = StationSync(lambda: window.ctx.service)
    window.ctx.sync = sync
    window.show_screen("sync")
    panel = window.screens["sync"]
    panel.on_shown()
    qtbot.waitUntil(lambda: panel.status is not None, timeout=TIMEOUT)
    assert panel.status.refused_captures == {capture_id: reason}
    assert panel.refused.text() == (
        f"1 captures set aside (not sent; kept on this station)\nCapture {capture_id}: {reason}")
    assert panel.queue.text() == "0 captures"
    assert panel.retry.isVisible() and panel.retry.text() == "Retry refused"
    assert panel.retry.accessibleName() == "Retry refused"

    nurse = service.login("nurse", PASSWORD)  # only administrators may put them back
    with pytest.raises(PermissionDeniedError, match="may not change station settings"):
        sync.retry_refused(nurse)

    qtbot.mouseClick(panel.retry, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: panel.message.kind == "success" and not panel.retry.isVisible(),
                    timeout=TIMEOUT)
    assert panel.message.message == (
        "1 captures put back in the queue; they are sent at the next sync.")
    assert panel.refused.text() == "none" and panel.queue.text() == "1 captures"
    admin_id = window.ctx.session.operator_id
    with service.database.transaction() as session:
        entry = session.scalar(select(OutboxEntry).where(OutboxEntry.capture_id == capture_id))
        assert (entry.state, entry.server_errors, entry.refused_at) == ("pending", 0, None)
        retried = session.execute(select(AuditEvent.actor_id, AuditEvent.entity_id).where(
            AuditEvent.action == "outbox.retried")).all()
    assert [tuple(row) for row in retried] == [(admin_id, str(capture_id))]
    panel.on_hidden()
    sync.stop()
