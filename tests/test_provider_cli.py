"""``skinstation engine provider ...`` run through the real CLI entry point."""

from __future__ import annotations

import io
import re
from pathlib import Path

import pytest

from skinstation.cli import main
from skinstation.core.timeutil import utc_now
from skinstation.engine.database import open_engine_database
from skinstation.engine.errors import RateLimitedError
from skinstation.engine.providers import ratelimit
from skinstation.engine.providers import service as providers
from skinstation.settings import Settings
from tests.test_engine_helpers import write_engine_config


def test_provider_commands_create_keys_rotate_revoke_and_report_usage(
    tmp_path: Path, data_dir: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    config = write_engine_config(tmp_path / "engine.toml", home=tmp_path / "eng",
                                 data_dir=data_dir, engine={"home": str(tmp_path / "eng")})
    monkeypatch.setenv("SKINSTATION_CONFIG", str(config))
    monkeypatch.setattr("sys.stdin", io.StringIO(""))

    def run(*args: str) -> tuple[int, str, str]:
        code = main(["engine", "provider", *args])
        out, err = capsys.readouterr()
        return code, out.strip(), err.strip()

    assert run("create", "Acme Tele", "--per-minute", "2", "--per-day", "50") == (
        0, "created provider 1 'Acme Tele' (2/min, 50/day)", "")
    assert run("create", "Acme Tele") == (1, "", "error: provider 'Acme Tele' already exists")
    assert run("create", "Bad Quota", "--per-minute", "0") == (
        1, "", "error: requests_per_minute must be between 1 and 1000000, got 0")

    code, out, _ = run("key", "create", "Acme Tele", "--scope", "classify", "--scope",
                       "submit-for-review", "--label", "prod")
    header, key = out.splitlines()
    key_id = key.split("_")[1]
    assert code == 0 and re.fullmatch(r"spk_[0-9a-f]{12}_[A-Za-z0-9_-]{43}", key)
    assert header == (f"new key {key_id} (classify,submit-for-review); shown once, store it "
                      "now:")
    assert run("key", "list", "1") == (
        0, f"{key_id}  classify,submit-for-review  active  last used never  (prod)", "")

    code, out, _ = run("key", "rotate", key_id, "--grace-seconds", "600")
    lines = out.splitlines()
    new_key = lines[-1]
    new_id = new_key.split("_")[1]
    assert code == 0 and lines[0] == f"key {key_id} replaced; it stops working in 600 s"
    db = open_engine_database(Settings.load(env={}, config_file=config))
    assert providers.authenticate_key(db, key).key_id == key_id  # grace period
    principal = providers.authenticate_key(db, new_key)
    code, out, _ = run("key", "revoke", new_id)
    assert code == 0 and re.fullmatch(rf"key {new_id} revoked at \S+ \S+ UTC", out)
    assert run("key", "revoke", "ffffffffffff") == (
        1, "", "error: API key ffffffffffff does not exist")
    listing = run("key", "list", "Acme Tele")[1].splitlines()
    assert re.fullmatch(rf"{key_id}  classify,submit-for-review  active until \S+ \S+  "
                        r"last used never  \(prod\)", listing[0])
    assert re.fullmatch(rf"{new_id}  classify,submit-for-review  revoked \S+ \S+  "
                        r"last used never  \(prod\)", listing[1])

    for _ in range(2):
        ratelimit.admit(db, principal)
    with pytest.raises(RateLimitedError):
        ratelimit.admit(db, principal)
    assert run("update", "Acme Tele", "--per-minute", "5", "--disable") == (
        0, "provider 1 'Acme Tele': 5/min, 50/day, disabled", "")
    assert run("list") == (0, "1  Acme Tele  5/min  50/day  disabled", "")
    today = utc_now().date()
    assert run("usage") == (0, (
        "provider  day  requests  classified  not_assessable  submitted  rejected  failed  "
        f"throttled  busy\nAcme Tele  {today}  2  0  0  0  0  0  1  0"), "")
    assert run("usage", "Acme Tele", "--from", "2020-01-01", "--to", "2020-01-31")[1] == (
        "provider  day  requests  classified  not_assessable  submitted  rejected  failed  "
        "throttled  busy")
    assert run("usage", "Nobody") == (1, "", "error: provider Nobody does not exist")
    main(["engine", "audit", "--limit", "100"])
    actions = [line.split("  ")[2] for line in capsys.readouterr().out.splitlines()]
    assert [a for a in actions if a.startswith("provider")] == [
        "provider.created", "provider_key.created", "provider_key.created",
        "provider_key.rotated", "provider_key.revoked", "provider.updated"]
    db.dispose()
