"""``skinstation engine ...`` administration commands, run through the real CLI entry point."""

from __future__ import annotations

import io
import re
from pathlib import Path

import pytest

from skinstation.cli import main
from skinstation.engine.database import open_engine_database
from skinstation.engine.stations import service as stations
from skinstation.settings import Settings
from tests.test_engine_helpers import write_engine_config


def test_admin_commands_create_accounts_codes_revoke_queue_and_audit(
    tmp_path: Path, data_dir: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    config = write_engine_config(tmp_path / "engine.toml", home=tmp_path / "eng",
                                 data_dir=data_dir, engine={"home": str(tmp_path / "eng")})
    monkeypatch.setenv("SKINSTATION_CONFIG", str(config))

    def run(*args: str, stdin: str = "") -> tuple[int, str, str]:
        monkeypatch.setattr("sys.stdin", io.StringIO(stdin))
        code = main(["engine", *args])
        out, err = capsys.readouterr()
        return code, out.strip(), err.strip()

    code, out, _ = run("init")
    assert code == 0 and re.fullmatch(r"engine ready; signing public key [A-Za-z0-9+/=]{44}", out)
    assert run("create-admin", "root", "--password-stdin", stdin="a-long-passphrase-1\n")[:2] == (
        0, "created admin 'root'")
    assert run("create-dermatologist", "drkim", "--display-name", "Dr Kim", "--password-stdin",
               stdin="short\n") == (
        1, "", "error: Password must be at least 10 characters long.")
    assert run("create-dermatologist", "drkim", "--password-stdin",
               stdin="derm-passphrase-22\n")[:2] == (0, "created dermatologist 'drkim'")

    code, out, _ = run("enrollment-code", "Clinic West")
    assert code == 0 and out.startswith("enrollment code for 'Clinic West' (one use, expires")
    issued = out.splitlines()[-1]
    assert re.fullmatch(r"[A-Z2-9]{5}(-[A-Z2-9]{5}){3}", issued)
    db = open_engine_database(Settings.load(env={}, config_file=config))
    enrolled = stations.enroll(db, issued, "west-1")

    code, out, _ = run("stations")
    assert code == 0 and re.match(rf"\s*{enrolled.station_id}  Clinic West  \(west-1\)  active",
                                  out)
    code, out, _ = run("revoke-station", str(enrolled.station_id))
    assert code == 0 and out.startswith(f"station {enrolled.station_id} (Clinic West) revoked at")
    assert "revoked" in run("stations")[1]
    assert run("revoke-station", "99") == (1, "", "error: station 99 does not exist")

    assert run("train", "--views", "1", "--head-epochs", "2")[:2] == (
        0, "queued training job 1; run 'skinstation engine worker' to process it")
    code, out, _ = run("jobs")
    assert code == 0 and re.fullmatch(r"\s*1  queued\s+-\s+-  requested by cli:\S+", out)
    assert run("models", "list") == (0, "", "")
    assert run("models", "rollback") == (
        1, "", "error: no model has been deployed yet; nothing to roll back")
    code, out, _ = run("audit", "--limit", "100")
    actions = [line.split("  ")[2] for line in out.splitlines()]
    assert actions == ["signing_key.created", "account.created", "account.created",
                       "enrollment_code.created", "station.enrolled", "station.revoked",
                       "training_job.created"]
    db.dispose()
