"""Databases, images and keys are owner-only (0600 files in 0700 folders), checked at start-up."""

from __future__ import annotations

import logging
import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from skinstation.core.files import UnsafePermissionsError, secure_tree
from skinstation.core.images import encode_image
from skinstation.core.keyring_file import EncryptedFileKeyring
from skinstation.core.keystore import get_or_create_secret, keyring_file_path
from skinstation.engine.database import open_engine_database
from skinstation.engine.errors import InvalidError
from skinstation.engine.models import signing
from skinstation.engine.server import check_tls_key, serve
from skinstation.settings import Settings
from skinstation.storage.database import init_database
from tests.test_engine_helpers import add_capture, ham_images, make_station, make_tls

FILES_LOG = "skinstation.core.files"
NOBODY = 65534


def _modes(root: Path) -> dict[str, int]:
    """Every path under ``root`` (and root itself as ".") with its exact permission bits."""
    modes = {".": stat.S_IMODE(root.stat().st_mode)}
    for path in root.rglob("*"):
        modes[path.relative_to(root).as_posix()] = stat.S_IMODE(path.lstat().st_mode)
    return modes


def _assert_owner_only(root: Path) -> dict[str, int]:
    modes = _modes(root)
    wrong = {name: f"{mode:04o}" for name, mode in modes.items()
             if mode != (0o700 if (root / name).is_dir() else 0o600)}
    assert wrong == {}
    return modes


def _fixed_messages(caplog: pytest.LogCaptureFixture) -> set[str]:
    return {record.getMessage() for record in caplog.records
            if record.name == FILES_LOG and record.levelno == logging.WARNING}


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture(autouse=True)
def usual_umask() -> Iterator[None]:
    """The usual umask 022, under which files would be 0644 and folders 0755."""
    previous = os.umask(0o022)
    yield
    os.umask(previous)


def test_a_fresh_station_home_is_owner_only(settings: Settings, ham_dir: Path) -> None:
    station = make_station(settings)
    capture = add_capture(station, ham_images(ham_dir, 1)[0])
    ring = EncryptedFileKeyring(keyring_file_path(home=settings.home),
                                passphrase="station admin passphrase")
    assert len(get_or_create_secret("station-data-key", backend=ring)) == 32

    home = settings.home
    modes = _assert_owner_only(home)
    image_ref = f"images/{capture.image_ref}"
    expected = {".", "station.db", "station.db-wal", "station.db-shm", "images", image_ref,
                str(Path(image_ref).parent), "keys", "keys/keyring.enc", "keys/keyring.enc.lock"}
    assert expected <= set(modes), sorted(expected - set(modes))
    station.database.dispose()


def test_a_fresh_engine_home_is_owner_only(tmp_path: Path, data_dir: Path,
                                           real_image_path: Path) -> None:
    settings = Settings.load(env={}, home=tmp_path / "station", data_dir=data_dir,
                             engine={"home": str(tmp_path / "engine")})
    db = open_engine_database(settings)
    signing.ensure_signing_key(db, actor="test")
    image = encode_image(real_image_path.read_bytes())
    ref = db.images.put(image)

    modes = _assert_owner_only(tmp_path / "engine")
    expected = {".", "engine.db", "engine.db-wal", "engine.db-shm", "keys",
                "keys/signing_key.pem", "storage", "storage/images", "storage/models",
                f"storage/images/{ref}", f"storage/images/{ref.split('/')[0]}"}
    assert expected <= set(modes), sorted(expected - set(modes))
    db.dispose()


def test_a_loose_station_database_is_fixed_at_start_with_a_warning(
    settings: Settings, ham_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    station = make_station(settings)
    capture = add_capture(station, ham_images(ham_dir, 1)[0])
    station.database.dispose()
    home = settings.home
    database = home / "station.db"
    image = home / "images" / capture.image_ref
    os.chmod(home, 0o755)
    os.chmod(database, 0o644)
    os.chmod(home / "images", 0o755)
    os.chmod(image, 0o644)

    with caplog.at_level(logging.WARNING, logger=FILES_LOG):
        reopened = init_database(settings)

    assert _fixed_messages(caplog) == {
        f"fixed permissions of {home}: 0755 -> 0700 (owner-only)",
        f"fixed permissions of {database}: 0644 -> 0600 (owner-only)",
        f"fixed permissions of {home / 'images'}: 0755 -> 0700 (owner-only)",
        f"fixed permissions of {image}: 0644 -> 0600 (owner-only)",
    }
    with reopened.engine.connect() as connection:  # the data is all still there
        assert connection.exec_driver_sql("SELECT count(*) FROM captures").scalar() == 1
    assert reopened.images.read(capture.image_ref, capture.image_sha256)
    _assert_owner_only(home)
    caplog.clear()
    reopened.dispose()
    with caplog.at_level(logging.WARNING, logger=FILES_LOG):
        init_database(settings).dispose()
    assert _fixed_messages(caplog) == set()  # nothing left to fix


def test_loose_engine_files_and_signing_key_are_fixed_at_start(
    settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    db = open_engine_database(settings)
    public = signing.ensure_signing_key(db, actor="test")
    db.dispose()
    key, engine_db = db.paths.signing_key, db.paths.home / "engine.db"
    os.chmod(key.parent, 0o755)
    os.chmod(key, 0o640)
    os.chmod(engine_db, 0o666)

    with caplog.at_level(logging.WARNING, logger=FILES_LOG):
        reopened = open_engine_database(settings)

    assert _fixed_messages(caplog) == {
        f"fixed permissions of {key.parent}: 0755 -> 0700 (owner-only)",
        f"fixed permissions of {key}: 0640 -> 0600 (owner-only)",
        f"fixed permissions of {engine_db}: 0666 -> 0600 (owner-only)",
    }
    assert signing.ensure_signing_key(reopened, actor="test") == public
    assert (_mode(key), _mode(key.parent), _mode(engine_db)) == (0o600, 0o700, 0o600)
    reopened.dispose()


@pytest.mark.skipif(os.geteuid() != 0, reason="giving a file to another user needs root")
def test_a_loose_file_of_another_user_is_refused_and_left_alone(settings: Settings) -> None:
    init_database(settings).dispose()
    database = settings.home / "station.db"
    os.chmod(database, 0o644)
    os.chown(database, NOBODY, NOBODY)

    with pytest.raises(UnsafePermissionsError) as refused:
        init_database(settings)

    assert str(refused.value) == (
        f"{database} has mode 0644 and belongs to another user (uid {NOBODY}); it must be "
        f"owner-only: chmod 600 {database} as its owner, or move it")
    assert _mode(database) == 0o644


def test_secure_tree_leaves_links_and_skipped_folders_alone(tmp_path: Path) -> None:
    root = tmp_path / "root"
    (root / "inner").mkdir(parents=True, mode=0o755)
    (root / "inner" / "a.db").write_bytes(b"x")
    os.chmod(root / "inner" / "a.db", 0o644)
    (root / "other").mkdir(mode=0o755)
    (root / "other" / "b").write_bytes(b"y")
    os.chmod(root / "other" / "b", 0o644)
    outside = tmp_path / "outside.txt"
    outside.write_bytes(b"public")
    os.chmod(outside, 0o644)
    (root / "link").symlink_to(outside)

    fixed = secure_tree(root, skip=[root / "other"])

    assert sorted(p.relative_to(tmp_path).as_posix() for p in fixed) == [
        "root", "root/inner", "root/inner/a.db", "root/other"]
    assert (_mode(outside), _mode(root / "other" / "b")) == (0o644, 0o644)


def test_a_loose_tls_key_is_fixed_and_another_users_is_refused(
    tmp_path: Path, settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    tls = make_tls(tmp_path / "tls")
    os.chmod(tls.server_key, 0o644)
    link = tmp_path / "live-key.pem"
    link.symlink_to(tls.server_key)

    with caplog.at_level(logging.WARNING, logger=FILES_LOG):
        assert check_tls_key(link) == tls.server_key.resolve()

    assert _fixed_messages(caplog) == {
        f"fixed permissions of {tls.server_key.resolve()}: 0644 -> 0600 (owner-only)"}
    assert _mode(tls.server_key) == 0o600
    with pytest.raises(InvalidError, match=r"TLS key file .*missing\.pem not found"):
        check_tls_key(tmp_path / "missing.pem")
    if os.geteuid() != 0:
        return
    os.chmod(tls.server_key, 0o640)
    os.chown(tls.server_key, NOBODY, NOBODY)
    with pytest.raises(InvalidError, match=r"^refusing the TLS key: .* has mode 0640 and "
                       r"belongs to another user \(uid 65534\)"):
        serve(settings, ssl_certfile=str(tls.server_cert), ssl_keyfile=str(tls.server_key))
    assert _mode(tls.server_key) == 0o640
    assert not (settings.home / "engine").exists()  # refused before anything was opened
