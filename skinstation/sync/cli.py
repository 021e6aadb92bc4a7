"""``skinstation sync ...``: enroll, sync once, run in the foreground, status, retry refused.

``retry`` puts the captures the engine refused back in the queue (after a fix). Received
models are installed with the station's ``ModelManager`` (verify, load, switch).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import signal
import sys
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from skinstation.settings import Settings
from skinstation.sync.pull import ModelInstaller

if TYPE_CHECKING:
    from skinstation.sync.runner import SyncRunner, SyncStatus

InstallerFactory = Callable[[Settings], ModelInstaller]


def model_manager_installer(settings: Settings) -> ModelInstaller:
    """The station's ``ModelManager.install`` as the sync client's model installer."""
    from skinstation.services.models import ModelManager

    manager = ModelManager(settings)
    return lambda path, sha256: manager.install(path, sha256).version


def settings_from_args(args: argparse.Namespace) -> Settings:
    """The settings, with ``--data-dir``, ``--engine-url`` and ``--ca-bundle`` applied."""
    overrides: dict[str, Any] = {}
    if getattr(args, "data_dir", None):
        overrides["data_dir"] = args.data_dir
    settings = Settings.load(**overrides)
    changes = {k: v for k, v in (("engine_url", getattr(args, "engine_url", None)),
                                 ("ca_bundle", getattr(args, "ca_bundle", None))) if v}
    if changes:
        settings = settings.replace(sync=dataclasses.replace(settings.sync, **changes))
    return settings


def _print_status(status: SyncStatus) -> None:
    print(json.dumps(dataclasses.asdict(status), indent=2, default=str, sort_keys=True))


def _runner(args: argparse.Namespace, installer_factory: InstallerFactory) -> SyncRunner:
    from skinstation.storage import init_database
    from skinstation.sync.runner import SyncRunner

    settings = settings_from_args(args)
    installer = installer_factory(settings)
    return SyncRunner(settings, init_database(settings), installer=installer)


def register_sync_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser],
                           installer_factory: InstallerFactory = model_manager_installer) -> None:
    """Add ``skinstation sync ...`` to the top-level subparsers."""
    from skinstation.sync.client import SyncError
    from skinstation.sync.credentials import CredentialError, CredentialStore
    from skinstation.sync.transport import SyncConfigError

    failures = (SyncError, SyncConfigError, CredentialError)

    def cmd_enroll(args: argparse.Namespace) -> int:
        from skinstation.sync.runner import enroll_station

        settings = settings_from_args(args)
        try:
            credential = enroll_station(settings, args.code,
                                        CredentialStore(settings.station_id),
                                        replace=args.replace)
        except failures as error:
            print(f"error: {error}", file=sys.stderr)
            return 1
        print(f"enrolled as station {credential.station_id} ({credential.station_name}) at "
              f"{credential.engine_url}; engine key {credential.key_id} pinned; credential "
              "stored in the OS keyring")
        return 0

    def cmd_once(args: argparse.Namespace) -> int:
        status = _runner(args, installer_factory).sync_once()
        _print_status(status)
        return 0 if status.state == "idle" else 1

    def cmd_status(args: argparse.Namespace) -> int:
        _print_status(_runner(args, installer_factory).status())
        return 0

    def cmd_run(args: argparse.Namespace) -> int:
        runner = _runner(args, installer_factory)
        stop = threading.Event()
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, lambda *_: stop.set())
        runner.on_status = lambda s: print(
            f"sync: {s.state}, queue {s.queue_length}, last error {s.last_error or '-'}",
            flush=True)
        runner.start()
        stop.wait()
        runner.stop()
        return 0

    def cmd_retry(args: argparse.Namespace) -> int:
        from skinstation.storage import StorageError

        runner = _runner(args, installer_factory)
        try:
            retried = runner.retry_refused(args.capture)
        except StorageError as error:
            print(f"error: {error}", file=sys.stderr)
            return 1
        if not retried:
            print("no refused captures")
        else:
            print(f"put back {len(retried)} refused capture(s): "
                  f"{', '.join(str(capture_id) for capture_id in retried)}; they are sent at "
                  "the next sync round")
        return 0

    def cmd_forget(args: argparse.Namespace) -> int:
        settings = settings_from_args(args)
        CredentialStore(settings.station_id).delete()
        print("station credential removed from the keyring")
        return 0

    sync = commands.add_parser("sync", help="sync this station with the central engine")
    sub = sync.add_subparsers(dest="sync_command", required=True)
    enroll = sub.add_parser("enroll", help="enroll with a one-time code from the administrator")
    enroll.add_argument("code")
    enroll.add_argument("--engine-url", help="https://engine:8443 (default: sync.engine_url)")
    enroll.add_argument("--ca-bundle", help="CA certificate of the engine (PEM)")
    enroll.add_argument("--replace", action="store_true", help="enroll again")
    enroll.set_defaults(handler=cmd_enroll)
    for name, handler, text in (("once", cmd_once, "run one sync round"),
                                ("status", cmd_status, "print the sync status"),
                                ("run", cmd_run, "sync in the foreground until stopped"),
                                ("forget", cmd_forget, "remove the credential")):
        command = sub.add_parser(name, help=text)
        command.add_argument("--ca-bundle", help="CA certificate of the engine (PEM)")
        command.set_defaults(handler=handler)
    retry = sub.add_parser("retry", help="put the captures the engine refused back in the queue")
    retry.add_argument("--capture", type=int, metavar="ID",
                       help="only this local capture id (default: every refused one)")
    retry.set_defaults(handler=cmd_retry)
