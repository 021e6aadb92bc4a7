"""Helpers shared by the engine and sync tests (no tests here).

Real parts only: a throwaway CA and server certificate made with ``cryptography``, the engine
served by uvicorn in its own process over HTTPS on 127.0.0.1, SkinStation's encrypted file
keyring in tmp_path, SQLite files or a private PostgreSQL schema.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from skinstation.core.crypto import ENGINE_KEYS, configure_data_keys
from skinstation.engine.accounts.models import AccountRole
from skinstation.engine.accounts.service import create_account
from skinstation.engine.database import EngineDatabase, open_engine_database
from skinstation.settings import Settings
from skinstation.storage import Capture, Database, StationStore, init_database
from tests.conftest import REPO_ROOT
from tests.test_storage_helpers import PG_URL, add_operator, postgres_schema_url

ADMIN_PASSWORD = "root-passphrase-0042"
DERM_PASSWORD = "derm-passphrase-0042"
T0 = dt.datetime(2025, 5, 1, 9, 0, tzinfo=dt.UTC)


# -- TLS -------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Tls:
    """Paths of a throwaway CA certificate and a server certificate/key signed by it."""

    ca_cert: Path
    server_cert: Path
    server_key: Path


def _name(common: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common)])


def make_tls(folder: Path) -> Tls:
    """Create a CA and a certificate for localhost/127.0.0.1 signed by it."""
    folder.mkdir(parents=True, exist_ok=True)
    now = dt.datetime.now(dt.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_cert = (
        x509.CertificateBuilder().subject_name(_name("SkinStation test CA"))
        .issuer_name(_name("SkinStation test CA")).public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=7))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False, False),
                       critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()),
                       critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder().subject_name(_name("localhost")).issuer_name(ca_cert.subject)
        .public_key(key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1)).not_valid_after(now + dt.timedelta(days=7))
        .add_extension(x509.SubjectAlternativeName([
            x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
                       critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    tls = Tls(folder / "ca.pem", folder / "server.pem", folder / "server-key.pem")
    tls.ca_cert.write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    tls.server_cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    tls.server_key.write_bytes(key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption()))
    tls.server_key.chmod(0o600)
    return tls


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


# -- engine configuration and process --------------------------------------------------------

def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_toml_value(item) for item in value) + "]"
    return '"' + str(value).replace("\\", "\\\\").replace('"', '\\"') + '"'


def write_engine_config(path: Path, *, home: Path, data_dir: Path, engine: dict[str, Any]) -> Path:
    """Write the settings.toml an engine process reads (``SKINSTATION_CONFIG``)."""
    lines = [f"home = {_toml_value(home)}", f"data_dir = {_toml_value(data_dir)}", "",
             "[engine]"]
    lines += [f"{key} = {_toml_value(value)}" for key, value in engine.items()]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def tiny_engine_options(tiny_manifest: Path, tiny_model: Path) -> dict[str, Any]:
    """Engine settings for tiny, fast retraining on the tiny manifest and its locked split."""
    return {
        "base_source": f"manifest:{tiny_manifest}",
        "locked_split": str(tiny_model.parent / "split.csv"),
        "train_views": 1, "head_epochs": 3, "finetune_epochs": 1, "batch_size": 16,
        "min_reviewed_cases": 1, "other_sources": [], "full_epochs": 1,
    }


@contextmanager
def engine_database_url(backend: str) -> Iterator[str]:
    """An empty database URL (SQLite default) or a fresh PostgreSQL schema."""
    if backend == "sqlite":
        yield ""
        return
    with postgres_schema_url() as url:
        yield url


class EngineServer:
    """``skinstation engine serve`` in its own process, over HTTPS on 127.0.0.1."""

    def __init__(self, config: Path, tls: Tls, *, workers: int = 1,
                 port: int | None = None, env: dict[str, str] | None = None) -> None:
        self.config = config
        self.tls = tls
        self.workers = workers
        self.port = port or free_port()
        self.env = env or {}  # e.g. file_keyring_env: the keyring holding its data keys
        self.process: subprocess.Popen[bytes] | None = None
        self.log = config.parent / f"engine-{self.port}.log"

    @property
    def url(self) -> str:
        """Base URL."""
        return f"https://127.0.0.1:{self.port}"

    def start(self, timeout: float = 60.0) -> EngineServer:
        """Start and wait until ``/api/v1/health`` answers."""
        env = {**os.environ, "SKINSTATION_CONFIG": str(self.config), **self.env}
        env.pop("SKINSTATION_HOME", None)
        command = [sys.executable, "-m", "skinstation.cli", "engine", "serve", "--host",
                   "127.0.0.1", "--port", str(self.port), "--workers", str(self.workers),
                   "--ssl-certfile", str(self.tls.server_cert), "--ssl-keyfile",
                   str(self.tls.server_key), "--log-level", "warning",
                   "--graceful-timeout", "1"]
        with open(self.log, "ab") as log:
            self.process = subprocess.Popen(command, env=env, cwd=REPO_ROOT, stdout=log,
                                            stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"engine exited {self.process.returncode}:\n"
                                   + self.log.read_text(errors="replace")[-3000:])
            try:
                if requests.get(f"{self.url}/api/v1/health", verify=str(self.tls.ca_cert),
                                timeout=2).status_code == 200:
                    return self
            except requests.RequestException:
                pass
            time.sleep(0.1)
        self.kill()
        raise RuntimeError("engine did not become ready:\n" + self.log.read_text()[-3000:])

    def stop(self) -> None:
        """Graceful stop (SIGTERM to its process group), then SIGKILL if needed."""
        if self.process is None or self.process.poll() is not None:
            return
        os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.kill()

    def kill(self) -> None:
        """SIGKILL its process group."""
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=10)


@dataclass
class EngineUnderTest:
    """A running engine, its settings, its database (opened in the test too) and an admin."""

    settings: Settings
    config: Path
    server: EngineServer
    db: EngineDatabase
    tls: Tls

    @property
    def url(self) -> str:
        """Base URL."""
        return self.server.url

    def get(self, path: str, token: str | None = None, **kwargs: Any) -> requests.Response:
        """GET ``/api/v1<path>`` with TLS verified against the test CA."""
        return self.request("GET", path, token, **kwargs)

    def post(self, path: str, token: str | None = None, **kwargs: Any) -> requests.Response:
        """POST ``/api/v1<path>``."""
        return self.request("POST", path, token, **kwargs)

    def request(self, method: str, path: str, token: str | None = None,
                **kwargs: Any) -> requests.Response:
        """Any request to ``/api/v1<path>``."""
        headers = {"Connection": "close", **kwargs.pop("headers", {})}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        return requests.request(method, f"{self.url}/api/v1{path}", headers=headers,
                                verify=str(self.tls.ca_cert), timeout=60, **kwargs)

    def login(self, username: str, password: str) -> str:
        """Log in through the API; returns the bearer token."""
        response = self.post("/auth/login", json={"username": username, "password": password})
        assert response.status_code == 200, response.text
        return response.json()["token"]

    def enrollment_code(self, admin_token: str, name: str) -> str:
        """A fresh enrollment code from the admin API."""
        response = self.post("/admin/enrollment-codes", admin_token, json={"station_name": name})
        assert response.status_code == 201, response.text
        return response.json()["code"]


def start_engine(tmp_path: Path, data_dir: Path, tls: Tls, *, database_url: str = "",
                 options: dict[str, Any] | None = None, workers: int = 1) -> EngineUnderTest:
    """Configure, start and open an engine with an admin and a dermatologist account."""
    home = tmp_path / "engine-home"
    engine_options = {"home": str(home), **(options or {})}
    if database_url:
        engine_options["database_url"] = database_url
    config = write_engine_config(tmp_path / "engine-settings.toml", home=home,
                                 data_dir=data_dir, engine=engine_options)
    settings = Settings.load(env={}, config_file=config)
    # the server and this process keep the engine's data keys in one file keyring
    keyring_file = tmp_path / "engine-keyring.enc"
    configure_data_keys(ENGINE_KEYS, enabled=settings.engine.encrypt_at_rest,
                        home=settings.home, backend=file_keyring(keyring_file))
    server = EngineServer(config, tls, workers=workers, env=file_keyring_env(keyring_file),
                          ).start()
    db = open_engine_database(settings)
    create_account(db, "admin", ADMIN_PASSWORD, AccountRole.ADMIN, actor="test")
    create_account(db, "drlee", DERM_PASSWORD, AccountRole.DERMATOLOGIST,
                   display_name="Dr Lee", actor="test")
    return EngineUnderTest(settings, config, server, db, tls)


@contextmanager
def running_engine(folder: Path, data_dir: Path, backend: str = "sqlite",
                   **kwargs: Any) -> Iterator[EngineUnderTest]:
    """A started engine on ``backend`` (SQLite or a fresh PostgreSQL schema), stopped after.

    ``kwargs`` go to :func:`start_engine` (``options``, ``workers``).
    """
    with engine_database_url(backend) as url:
        running = start_engine(folder, data_dir, make_tls(folder / "tls"), database_url=url,
                               **kwargs)
        try:
            yield running
        finally:
            running.server.stop()
            running.db.dispose()


def pg_available() -> bool:
    """Whether the PostgreSQL parametrisations run."""
    return bool(PG_URL)


# -- keyring and station ---------------------------------------------------------------------

TEST_KEYRING_PASSPHRASE = "test keyring passphrase"


def file_keyring(path: Path) -> Any:
    """SkinStation's encrypted file keyring at ``path``, keyed by ``TEST_KEYRING_PASSPHRASE``."""
    from skinstation.core.keyring_file import EncryptedFileKeyring

    return EncryptedFileKeyring(path, passphrase=TEST_KEYRING_PASSPHRASE)


def file_keyring_env(path: Path) -> dict[str, str]:
    """The environment that makes a station process use :func:`file_keyring`'s file."""
    return {"SKINSTATION_KEYRING_FILE": str(path),
            "SKINSTATION_KEYRING_PASSPHRASE": TEST_KEYRING_PASSPHRASE}


def share_data_keys(name: str, target: Any) -> None:
    """Copy this process's data keys ``name`` (made if missing) into the keyring ``target``.

    A station or engine process started by a test then reads what the test wrote and the
    other way round. Rotating in the test later needs another copy.
    """
    from skinstation.core.crypto import DataKeys
    from skinstation.core.keystore import SECRETS_SERVICE, default_keyring

    keys = DataKeys(name)
    keys.current_id()
    source = default_keyring()
    for entry in ["current", *keys.versions()]:
        value = source.get_password(SECRETS_SERVICE, f"{name}-{entry}")
        assert value is not None
        target.set_password(SECRETS_SERVICE, f"{name}-{entry}", value)


def station_settings(tmp_path: Path, engine_url: str, tls: Tls, *, name: str = "station",
                     **sync: Any) -> Settings:
    """Station settings syncing to ``engine_url`` and trusting the test CA."""
    options = {"engine_url": engine_url, "ca_bundle": str(tls.ca_cert), "settle_seconds": 0.0,
               "retries": 2, "backoff_seconds": 0.05, "timeout_seconds": 15.0,
               "interval_seconds": 0.5, **sync}
    return Settings.load(env={}, home=tmp_path / name, station_id=name, sync=options)


@dataclass
class Station:
    """A station database with a staff operator, a patient and an open visit."""

    settings: Settings
    database: Database
    store: StationStore
    operator_id: int
    visit_id: int


def make_station(settings: Settings, pseudonym: str = "P-0001") -> Station:
    """Open a station database with one operator, patient and visit."""
    database = init_database(settings)
    operator = add_operator(database, "nurse", "staff")
    store = StationStore(database)
    patient = store.create_patient(pseudonym, actor_id=operator)
    visit = store.open_visit(patient.id, operator_id=operator)
    return Station(settings, database, store, operator, visit.id)


def add_capture(station: Station, image: Path | bytes, *, decision: str = "benign",
                referral: bool = False, label: str | None = "nv",
                minutes: int = 0) -> Capture:
    """Save a capture (real image bytes) with a prediction and an original label."""
    data = image if isinstance(image, bytes) else image.read_bytes()
    when = T0 + dt.timedelta(minutes=minutes)
    capture = station.store.save_capture(
        station.visit_id, data, band="white", body_site="back", device_id="dermatoscope-1",
        operator_id=station.operator_id, access_time=when, capture_time=when)
    groups = {"skin_cancer": 0.3, "other_disease": 0.2, "benign": 0.5}
    classes = {"akiec": 0.1, "bcc": 0.1, "bkl": 0.1, "df": 0.1, "mel": 0.1, "nv": 0.4,
               "vasc": 0.1}
    station.store.save_prediction(capture.id, model_version="tiny-test-model",
                                  class_probabilities=classes, group_probabilities=groups,
                                  decision=decision, referral=referral)
    if label is not None:
        station.store.add_operator_label(capture.id, label, author_id=station.operator_id)
    return capture


def ham_images(ham_dir: Path, count: int, skip: int = 500) -> list[Path]:
    """``count`` distinct real HAM10000 images (well past the tiny manifest's first rows)."""
    images = sorted((ham_dir / "images").glob("ISIC_*.jpg"))
    return images[skip : skip + count]
