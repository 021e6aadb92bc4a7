"""``skinstation audit verify``: station administration commands run on the station itself.

These act on the station's own database with the rights of the OS user running them (the
same user who can read the database file); they are the station-side counterparts of the
``skinstation engine ...`` admin commands.
"""

from __future__ import annotations

import argparse
from typing import Any

from skinstation.settings import Settings


def _settings(args: argparse.Namespace) -> Settings:
    overrides: dict[str, Any] = {}
    if getattr(args, "data_dir", None):
        overrides["data_dir"] = args.data_dir
    return Settings.load(**overrides)


def cmd_audit_verify(args: argparse.Namespace) -> int:
    """Recompute the station audit log's hash chain; exit 1 when it is broken."""
    from skinstation.storage import init_database
    from skinstation.storage.audit import verify_audit_log

    database = init_database(_settings(args))
    try:
        with database.transaction() as session:
            report = verify_audit_log(session)
    finally:
        database.dispose()
    print(report.summary("station audit log"))
    return 0 if report.intact else 1


def register_station_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser],
                              ) -> None:
    """Add the station's admin commands to the top-level subparsers."""
    audit = commands.add_parser("audit", help="the station's audit log")
    audit_sub = audit.add_subparsers(dest="audit_command", required=True)
    audit_sub.add_parser(
        "verify", help="check the audit log's hash chain (prints the head hash to note down)",
    ).set_defaults(handler=cmd_audit_verify)
