"""Sync under faults, against a real engine process over HTTPS: engine down (and restarted:
job state survives), a connection cut mid-upload, a lost answer (duplicate upload), kill -9 of
the station mid-sync, a revoked token, a wrong CA. After each: nothing lost, nothing stored
twice, nothing accepted wrongly."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from sqlalchemy import select

from skinstation.core.crypto import STATION_KEYS
from skinstation.engine.ingest.models import Capture as EngineCapture
from skinstation.settings import Settings
from skinstation.storage import Outbox, OutboxState, SyncRecords
from skinstation.storage.models import AuditEvent, OutboxEntry
from skinstation.sync.credentials import CredentialStore
from skinstation.sync.runner import SyncRunner, SyncStatus, enroll_station
from tests.conftest import REPO_ROOT
from tests.test_engine_helpers import (
    ADMIN_PASSWORD,
    EngineUnderTest,
    Station,
    add_capture,
    file_keyring,
    file_keyring_env,
    ham_images,
    make_station,
    make_tls,
    share_data_keys,
    start_engine,
    station_settings,
)


class TcpProxy:
    """A real TCP relay on 127.0.0.1 in front of the engine (TLS passes through untouched).

    ``cut_after`` closes the next connection once that many client bytes were forwarded
    (a cable pulled mid-upload); ``drop_answer_when`` forwards the whole request but closes the
    next connection instead of relaying engine data once the predicate holds (e.g. the engine
    has stored the capture: the station never hears the answer); ``delay`` throttles every
    client chunk.
    """

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.cut_after: int | None = None
        self.drop_answer_when: Callable[[], bool] | None = None
        self.delay = 0.0
        self.faults = 0
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    def close(self) -> None:
        self.listener.close()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            cut, drop = self.cut_after, self.drop_answer_when
            self.cut_after = self.drop_answer_when = None
            threading.Thread(target=self._relay, args=(client, cut, drop), daemon=True).start()

    def _relay(self, client: socket.socket, cut: int | None,
               drop: Callable[[], bool] | None) -> None:
        upstream = socket.create_connection(("127.0.0.1", self.target_port))
        sent = [0]
        closed = threading.Event()

        def close_both() -> None:
            closed.set()
            for sock in (client, upstream):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
                sock.close()

        def upward() -> None:
            while not closed.is_set():
                try:
                    data = client.recv(4096)
                except OSError:
                    break
                if not data:
                    break
                if cut is not None and sent[0] + len(data) > cut:
                    upstream.sendall(data[: cut - sent[0]])
                    self.faults += 1
                    break
                time.sleep(self.delay)
                try:
                    upstream.sendall(data)
                except OSError:
                    break
                sent[0] += len(data)
            close_both()

        def downward() -> None:
            while not closed.is_set():
                try:
                    data = upstream.recv(65536)
                except OSError:
                    break
                if not data:
                    break
                if drop is not None and drop():
                    self.faults += 1
                    break
                try:
                    client.sendall(data)
                except OSError:
                    break
            close_both()

        threading.Thread(target=upward, daemon=True).start()
        downward()


@pytest.fixture(scope="module")
def engine(tmp_path_factory: pytest.TempPathFactory, data_dir: Path) -> Iterator[EngineUnderTest]:
    folder = tmp_path_factory.mktemp("sync-engine")
    running = start_engine(folder, data_dir, make_tls(folder / "tls"))
    yield running
    running.server.stop()
    running.db.dispose()


@pytest.fixture()
def keyring_backend(tmp_path: Path) -> object:
    return file_keyring(tmp_path / "xdg" / "python_keyring" / "keyring_pass.cfg")


def _enrolled_station(engine: EngineUnderTest, tmp_path: Path, keyring_backend: object,
                      name: str, url: str | None = None, count: int = 3, skip: int = 1000,
                      **sync: object) -> tuple[Station, SyncRunner]:
    settings = station_settings(tmp_path, url or engine.url, engine.tls, name=name, **sync)
    admin = engine.login("admin", ADMIN_PASSWORD)
    credentials = CredentialStore(settings.station_id, keyring_backend)
    enroll_station(settings, engine.enrollment_code(admin, name), credentials)
    station = make_station(settings)
    for index, image in enumerate(ham_images(Path(engine.settings.data_dir) / "ham10000", count,
                                             skip=skip)):
        add_capture(station, image, minutes=index)
    return station, SyncRunner(settings, station.database, credentials=credentials)


def _engine_uids(engine: EngineUnderTest, station_id: int | None = None) -> list[str]:
    with engine.db.transaction() as session:
        stmt = select(EngineCapture.uid).order_by(EngineCapture.id)
        if station_id is not None:
            stmt = stmt.where(EngineCapture.station_id == station_id)
        return list(session.scalars(stmt))


def _outbox(station: Station) -> list[tuple[str, int]]:
    with station.database.transaction() as session:
        rows = session.execute(select(OutboxEntry.state, OutboxEntry.attempts)
                               .order_by(OutboxEntry.id))
        return [tuple(row) for row in rows]


def _local_uids(station: Station) -> list[str]:
    from skinstation.storage import Capture

    with station.database.transaction() as session:
        return list(session.scalars(select(Capture.uid).order_by(Capture.id)))


def test_engine_down_nothing_lost_then_everything_sent_once(
    engine: EngineUnderTest, tmp_path: Path, keyring_backend: object
) -> None:
    station, runner = _enrolled_station(engine, tmp_path, keyring_backend, "st-down", skip=1000)
    admin = engine.login("admin", ADMIN_PASSWORD)
    job = engine.post("/admin/training-jobs", admin, json={"views": 1}).json()
    engine.server.kill()  # the engine goes down hard (kill -9) ...
    try:
        status = runner.sync_once()
    finally:
        engine.server.start()  # ... and comes back: job state survived the restart
    assert engine.get(f"/admin/training-jobs/{job['job_id']}", admin).json() == job
    assert (job["state"], job["params"]) == ("queued", {"views": 1})
    assert (status.state, status.queue_length, status.confirmed) == ("offline", 3, 0)
    assert status.last_error.startswith(f"engine {engine.url} unreachable:")
    assert (status.consecutive_failures, status.last_success) == (1, None)
    assert _outbox(station) == [("pending", 1), ("pending", 0), ("pending", 0)]
    assert runner.delay() == pytest.approx(0.1)

    status = runner.sync_once()
    assert (status.state, status.queue_length, status.confirmed, status.last_error) == (
        "idle", 0, 3, None)
    assert status.last_success is not None
    assert _outbox(station) == [("confirmed", 2), ("confirmed", 1), ("confirmed", 1)]
    assert _engine_uids(engine)[-3:] == _local_uids(station)
    assert len(set(_engine_uids(engine))) == len(_engine_uids(engine))


def test_connection_cut_mid_upload_stores_nothing_until_the_retry(
    engine: EngineUnderTest, tmp_path: Path, keyring_backend: object
) -> None:
    proxy = TcpProxy(engine.server.port)
    station, runner = _enrolled_station(engine, tmp_path, keyring_backend, "st-cut",
                                        url=proxy.url, count=1, skip=1010, retries=0)
    before = (_engine_uids(engine), len(list(engine.db.images.files())))
    upload = SyncRecords(station.database).upload_of(1)
    # TLS handshake (~0.6 kB) + HTTP and multipart headers + metadata + half of the image
    proxy.cut_after = 1500 + len(json.dumps(upload.metadata)) + len(upload.image) // 2
    status = runner.sync_once()
    assert proxy.faults == 1 and status.state == "offline"
    assert (_engine_uids(engine), len(list(engine.db.images.files()))) == before
    assert _outbox(station) == [("pending", 1)]

    status = runner.sync_once()
    assert status.state == "idle" and _outbox(station) == [("confirmed", 2)]
    assert _engine_uids(engine) == [*before[0], *_local_uids(station)]
    assert len(list(engine.db.images.files())) == before[1] + 1
    proxy.close()


def test_lost_answer_is_retried_and_the_engine_keeps_one_copy(
    engine: EngineUnderTest, tmp_path: Path, keyring_backend: object
) -> None:
    proxy = TcpProxy(engine.server.port)
    station, runner = _enrolled_station(engine, tmp_path, keyring_backend, "st-lost",
                                        url=proxy.url, count=1, skip=1020, retries=0)
    uid = _local_uids(station)[0]
    proxy.drop_answer_when = lambda: uid in _engine_uids(engine)  # stored, then cut
    status = runner.sync_once()
    assert proxy.faults == 1 and status.state == "offline"
    assert _engine_uids(engine)[-1] == _local_uids(station)[0]  # stored, answer lost
    count = len(_engine_uids(engine))

    status = runner.sync_once()
    assert status.state == "idle" and _outbox(station) == [("confirmed", 2)]
    assert len(_engine_uids(engine)) == count
    with station.database.transaction() as session:
        uploaded = session.scalars(select(AuditEvent.detail).where(
            AuditEvent.action == "capture.uploaded")).all()
    assert [d["duplicate"] for d in uploaded] == [True]
    proxy.close()


def test_revoked_token_is_refused_and_nothing_is_stored(
    engine: EngineUnderTest, tmp_path: Path, keyring_backend: object
) -> None:
    station, runner = _enrolled_station(engine, tmp_path, keyring_backend, "st-revoked",
                                        count=2, skip=1030)
    admin = engine.login("admin", ADMIN_PASSWORD)
    station_id = runner.credentials.load().station_id
    assert engine.post(f"/admin/stations/{station_id}/revoke", admin).status_code == 200
    before = _engine_uids(engine)
    status = runner.sync_once()
    assert status.state == "error"
    assert status.last_error == ("engine refused (401): station credential was revoked; ask the "
                                 "administrator for a new enrollment code")
    assert _engine_uids(engine) == before and _engine_uids(engine, station_id) == []
    assert _outbox(station) == [("pending", 1), ("pending", 0)]


def test_wrong_ca_is_refused_before_anything_is_sent(
    engine: EngineUnderTest, tmp_path: Path, keyring_backend: object
) -> None:
    station, runner = _enrolled_station(engine, tmp_path, keyring_backend, "st-ca", count=1,
                                        skip=1040)
    other_ca = make_tls(tmp_path / "other-ca").ca_cert
    runner.settings = runner.settings.replace(sync={**runner.settings.sync.__dict__,
                                                    "ca_bundle": str(other_ca)})
    before = _engine_uids(engine)
    status = runner.sync_once()
    assert status.state == "offline" and "TLS verification of" in status.last_error
    assert "CERTIFICATE_VERIFY_FAILED" in status.last_error
    assert _engine_uids(engine) == before and _outbox(station) == [("pending", 1)]


def test_background_runner_reports_status_and_stops(
    engine: EngineUnderTest, tmp_path: Path, keyring_backend: object
) -> None:
    station, runner = _enrolled_station(engine, tmp_path, keyring_backend, "st-bg", count=2,
                                        skip=1050)
    seen: list[SyncStatus] = []
    drained = threading.Event()

    def on_status(status: SyncStatus) -> None:
        seen.append(status)
        if status.state == "idle" and status.queue_length == 0:
            drained.set()

    runner.on_status = on_status
    started = time.monotonic()
    runner.start()
    assert time.monotonic() - started < 0.5 and runner.running  # start() does not block
    assert drained.wait(30)
    add_capture(station, ham_images(Path(engine.settings.data_dir) / "ham10000", 1,
                                    skip=1060)[0])
    drained.clear()
    runner.sync_now()
    assert drained.wait(30)
    runner.stop()
    assert not runner.running and runner.status().state == "stopped"
    assert "syncing" in [s.state for s in seen]
    assert _outbox(station) == [("confirmed", 1)] * 3


def test_kill_9_of_the_station_mid_sync_resumes_without_loss_or_duplicates(
    engine: EngineUnderTest, tmp_path: Path, keyring_backend: object
) -> None:
    proxy = TcpProxy(engine.server.port)
    proxy.delay = 0.05
    station, runner = _enrolled_station(engine, tmp_path, keyring_backend, "st-kill",
                                        url=proxy.url, count=10, skip=1100)
    station_id = runner.credentials.load().station_id
    config = tmp_path / "station.toml"
    config.write_text(
        f'home = "{station.settings.home}"\nstation_id = "st-kill"\n'
        f'data_dir = "{engine.settings.data_dir}"\n[sync]\nengine_url = "{proxy.url}"\n'
        f'ca_bundle = "{engine.tls.ca_cert}"\nsettle_seconds = 0.0\ninterval_seconds = 0.5\n'
        "backoff_seconds = 0.05\n", encoding="utf-8")
    share_data_keys(STATION_KEYS, keyring_backend)  # it reads what this process encrypted
    env = {**os.environ, "SKINSTATION_CONFIG": str(config),
           **file_keyring_env(Path(keyring_backend.file_path))}
    process = subprocess.Popen([sys.executable, "-m", "skinstation.cli", "sync", "run"],
                               env=env, cwd=REPO_ROOT, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while len(_engine_uids(engine, station_id)) < 3 and time.monotonic() < deadline:
        time.sleep(0.05)
    os.kill(process.pid, signal.SIGKILL)
    process.wait(timeout=10)
    stored_at_kill = _engine_uids(engine, station_id)
    assert 3 <= len(stored_at_kill) < 10, "the kill must land mid-sync"
    states = [state for state, _ in _outbox(station)]
    confirmed = states.count(OutboxState.CONFIRMED.value)
    assert confirmed <= len(stored_at_kill) <= confirmed + 1  # at most one answer was in flight
    with sqlite3.connect(station.settings.home / "station.db") as check:
        assert check.execute("PRAGMA integrity_check").fetchone() == ("ok",)

    proxy.delay = 0.0
    status = runner.sync_once()
    assert (status.state, status.queue_length, status.confirmed) == ("idle", 0, 10)
    assert _engine_uids(engine, station_id) == _local_uids(station)
    assert stored_at_kill == _local_uids(station)[: len(stored_at_kill)]
    assert Outbox(station.database).counts()[OutboxState.CONFIRMED] == 10
    proxy.close()


def test_sync_settings_reject_plain_http_and_disabled_tls_to_remote_hosts(
    tmp_path: Path,
) -> None:
    from skinstation.sync.client import EngineClient
    from skinstation.sync.transport import SyncConfigError, build_session, check_engine_url

    with pytest.raises(SyncConfigError, match=r"refusing plain http to engine\.example: "
                       "patient data must travel over https"):
        check_engine_url("http://engine.example:8443")
    with pytest.raises(SyncConfigError, match=r"refusing to turn TLS verification off for "
                       r"engine\.example"):
        check_engine_url("https://engine.example", verify_tls=False)
    with pytest.raises(SyncConfigError, match="no engine URL configured"):
        check_engine_url("")
    assert check_engine_url("http://127.0.0.1:8080/") == "http://127.0.0.1:8080"
    settings = Settings.load(env={}, home=tmp_path, sync={"engine_url": "https://e.example",
                                                          "ca_bundle": "/etc/ca.pem",
                                                          "retries": 4, "backoff_seconds": 0.5})
    session = build_session(settings.sync)
    retry = session.get_adapter("https://e.example").max_retries
    assert (session.verify, retry.total, retry.backoff_factor, retry.allowed_methods) == (
        "/etc/ca.pem", 4, 0.5, None)
    assert set(retry.status_forcelist) == {429, 500, 502, 503, 504}
    with pytest.raises(SyncConfigError, match="refusing plain http"):
        EngineClient(settings.sync.__class__(engine_url="http://10.1.2.3"))


def test_credentials_live_only_in_the_os_keyring(
    engine: EngineUnderTest, tmp_path: Path, keyring_backend: object
) -> None:
    import keyring

    from skinstation.sync.credentials import CredentialError

    previous = keyring.get_keyring()
    keyring.set_keyring(keyring_backend)
    try:
        settings = station_settings(tmp_path, engine.url, engine.tls, name="st-keyring")
        admin = engine.login("admin", ADMIN_PASSWORD)
        store = CredentialStore(settings.station_id)  # the keyring's default backend
        credential = enroll_station(settings, engine.enrollment_code(admin, "kr"), store)
        station = make_station(settings)
        runner = SyncRunner(settings, station.database)
        assert runner.sync_once().state == "idle"
        assert store.load() == credential and "<hidden>" in repr(credential)
        reread = file_keyring(Path(keyring_backend.file_path))  # a fresh reader of the file
        assert credential.token in reread.get_password("skinstation-sync", "st-keyring")
        for path in settings.home.rglob("*"):
            if path.is_file():
                assert credential.token.encode() not in path.read_bytes(), path
        with pytest.raises(Exception, match="already enrolled"):
            enroll_station(settings, "ANY-CODE", store)
        keyring.get_keyring().set_password("skinstation-sync", "st-keyring", "not json")
        with pytest.raises(CredentialError, match="is not a station credential; re-enroll"):
            store.load()
        store.delete()
        assert store.load() is None
        assert runner.sync_once().state == "not_enrolled"
    finally:
        keyring.set_keyring(previous)


def test_sync_cli_enrolls_syncs_and_reports_status(
    engine: EngineUnderTest, tmp_path: Path, keyring_backend: object,
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import json as json_module

    import keyring

    from skinstation.cli import main

    config = tmp_path / "station.toml"
    config.write_text(
        f'home = "{tmp_path / "st-cli"}"\nstation_id = "st-cli"\n[sync]\n'
        f'engine_url = "{engine.url}"\nca_bundle = "{engine.tls.ca_cert}"\n'
        "settle_seconds = 0.0\n", encoding="utf-8")
    monkeypatch.setenv("SKINSTATION_CONFIG", str(config))
    previous = keyring.get_keyring()
    keyring.set_keyring(keyring_backend)
    try:
        admin = engine.login("admin", ADMIN_PASSWORD)
        assert main(["sync", "enroll", "WRONG-CODE"]) == 1
        assert capsys.readouterr().err.strip() == (
            "error: engine refused (401): enrollment code is unknown, already used or expired")
        assert main(["sync", "enroll", engine.enrollment_code(admin, "CLI clinic")]) == 0
        out = capsys.readouterr().out
        assert f"(CLI clinic) at {engine.url}; engine key" in out and "OS keyring" in out
        station = make_station(Settings.load(env={}, config_file=config))
        add_capture(station, ham_images(Path(engine.settings.data_dir) / "ham10000", 1,
                                        skip=1200)[0])
        assert main(["sync", "status"]) == 0
        before = json_module.loads(capsys.readouterr().out)
        assert (before["state"], before["queue_length"], before["enrolled"]) == ("idle", 1, True)
        assert main(["sync", "once"]) == 0
        after = json_module.loads(capsys.readouterr().out)
        assert (after["state"], after["queue_length"], after["confirmed"]) == ("idle", 0, 1)
    finally:
        keyring.set_keyring(previous)


def test_a_refused_capture_is_kept_and_does_not_block_the_others(
    engine: EngineUnderTest, tmp_path: Path, keyring_backend: object
) -> None:
    from skinstation.storage import StationStore

    settings = station_settings(tmp_path, engine.url, engine.tls, name="st-names",
                                send_patient_names=True).replace(store_patient_names=True)
    credentials = CredentialStore(settings.station_id, keyring_backend)
    admin = engine.login("admin", ADMIN_PASSWORD)
    enroll_station(settings, engine.enrollment_code(admin, "names"), credentials)
    station = make_station(settings, pseudonym="P-anon")
    named_store = StationStore(station.database, store_patient_names=True)
    named = named_store.create_patient("P-named", actor_id=station.operator_id, name="Jane Roe")
    images = ham_images(Path(engine.settings.data_dir) / "ham10000", 2, skip=1300)
    first_visit = station.visit_id
    station.visit_id = named_store.open_visit(named.id, operator_id=station.operator_id).id
    refused = add_capture(station, images[0])
    station.visit_id = first_visit
    accepted = add_capture(station, images[1], minutes=1)
    runner = SyncRunner(settings, station.database, credentials=credentials)

    status = runner.sync_once()
    reason = ("engine refused (422): this engine accepts pseudonyms only; the station sent a "
              "patient name (turn off sync.send_patient_names); nothing stored")
    assert (status.state, status.queue_length, status.confirmed) == ("error", 0, 1)
    assert status.refused_captures == {refused.id: reason}
    assert status.last_error == f"1 capture(s) refused by the engine; first: {reason}"
    station_id = credentials.load().station_id
    assert _engine_uids(engine, station_id) == [accepted.uid]
    assert _outbox(station) == [("refused", 1), ("confirmed", 1)]
    with station.database.transaction() as session:
        assert session.scalar(select(OutboxEntry.last_error).where(
            OutboxEntry.capture_id == refused.id)) == reason

    status = runner.sync_once()  # set aside: not sent again, the queue is clear
    assert (status.state, status.queue_length, status.last_error) == ("idle", 0, None)
    assert status.refused_captures == {refused.id: reason}
    assert _outbox(station) == [("refused", 1), ("confirmed", 1)]

    runner.settings = runner.settings.replace(  # the fix: names stay on the station
        sync={**runner.settings.sync.__dict__, "send_patient_names": False})
    assert runner.retry_refused() == [refused.id]
    status = runner.sync_once()
    assert (status.state, status.queue_length, status.confirmed) == ("idle", 0, 2)
    assert status.refused_captures == {}
    assert _outbox(station) == [("confirmed", 2), ("confirmed", 1)]
    assert sorted(_engine_uids(engine, station_id)) == sorted([accepted.uid, refused.uid])
