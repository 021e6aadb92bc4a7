"""``skinstation engine ...``: serve, worker, accounts, enrollment, stations, jobs, models.

Each command opens the engine database from the settings, calls one service function and
prints the result. Administrative commands act as ``cli:<os user>`` in the audit log.
"""

from __future__ import annotations

import argparse
import functools
import getpass
import json
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from skinstation.engine.errors import EngineError
from skinstation.engine.keys.cli import register_key_commands
from skinstation.engine.providers.cli import register_provider_commands
from skinstation.settings import Settings

Handler = Callable[[argparse.Namespace], int]


def _settings(args: argparse.Namespace) -> Settings:
    overrides = {"data_dir": args.data_dir} if getattr(args, "data_dir", None) else {}
    return Settings.load(**overrides)


def _db(args: argparse.Namespace) -> Any:
    from skinstation.engine.database import open_engine_database

    return open_engine_database(_settings(args))


def _reports_errors(handler: Handler) -> Handler:
    @functools.wraps(handler)
    def wrapped(args: argparse.Namespace) -> int:
        try:
            return handler(args)
        except EngineError as error:
            print(f"error: {error}", file=sys.stderr)
            return 1
    return wrapped


def _json(value: Any) -> str:
    return json.dumps(value, indent=2, default=str, sort_keys=True)


@_reports_errors
def cmd_init(args: argparse.Namespace) -> int:
    """Migrate the engine database and create the signing key."""
    from skinstation.engine.server import prepare

    public = prepare(_settings(args))
    print(f"engine ready; signing public key {public}")
    return 0


@_reports_errors
def cmd_serve(args: argparse.Namespace) -> int:
    """Serve the API with uvicorn."""
    from skinstation.engine.server import serve

    serve(_settings(args), host=args.host, port=args.port, workers=args.workers,
          ssl_certfile=args.ssl_certfile, ssl_keyfile=args.ssl_keyfile,
          allow_plain_http=args.allow_plain_http, log_level=args.log_level,
          graceful_timeout=args.graceful_timeout, classify_threads=args.classify_threads,
          classify_queue=args.classify_queue)
    return 0


@_reports_errors
def cmd_worker(args: argparse.Namespace) -> int:
    """Run training jobs."""
    from skinstation.engine.retraining.worker import Worker

    worker = Worker(_db(args))
    if args.once:
        job = worker.run_once()
        print("no queued job" if job is None else f"job {job.job_id}: {job.state} "
              f"({job.outcome or job.error})")
        return 0 if job is None or job.state == "succeeded" else 1
    done = worker.run(threading.Event(), poll_seconds=args.poll_seconds,
                      until_idle=args.until_idle)
    print(f"ran {done} job(s)")
    return 0


def _password(args: argparse.Namespace) -> str:
    if args.password_stdin:
        return sys.stdin.readline().rstrip("\n")
    first = getpass.getpass("password: ")
    if first != getpass.getpass("again: "):
        raise EngineError("passwords differ")
    return first


def _create_account(role: str) -> Handler:
    @_reports_errors
    def handler(args: argparse.Namespace) -> int:
        from skinstation.engine.accounts.models import AccountRole
        from skinstation.engine.accounts.service import cli_actor, create_account

        created = create_account(_db(args), args.username, _password(args), AccountRole(role),
                                 display_name=args.display_name, actor=cli_actor())
        print(f"created {created.role.value} {created.username!r}")
        return 0
    return handler


@_reports_errors
def cmd_enrollment_code(args: argparse.Namespace) -> int:
    """Issue a one-time enrollment code."""
    from skinstation.engine.accounts.service import cli_actor
    from skinstation.engine.stations.service import create_enrollment_code

    issued = create_enrollment_code(_db(args), args.station_name, actor=cli_actor())
    print(f"enrollment code for {issued.station_name!r} (one use, expires "
          f"{issued.expires_at:%Y-%m-%d %H:%M} UTC):\n{issued.code}")
    return 0


@_reports_errors
def cmd_stations(args: argparse.Namespace) -> int:
    """List enrolled stations."""
    from skinstation.engine.stations.service import list_stations

    for s in list_stations(_db(args)):
        state = f"revoked {s.revoked_at:%Y-%m-%d}" if s.revoked_at else "active"
        print(f"{s.station_id:4d}  {s.name}  ({s.station_ref})  {state}  last seen "
              f"{s.last_seen_at or 'never'}")
    return 0


@_reports_errors
def cmd_revoke(args: argparse.Namespace) -> int:
    """Revoke a station's credential."""
    from skinstation.engine.accounts.service import cli_actor
    from skinstation.engine.stations.service import revoke

    info = revoke(_db(args), args.station_id, actor=cli_actor())
    print(f"station {info.station_id} ({info.name}) revoked at {info.revoked_at}")
    return 0


@_reports_errors
def cmd_train(args: argparse.Namespace) -> int:
    """Queue a retraining job."""
    from skinstation.engine.accounts.service import cli_actor
    from skinstation.engine.retraining.jobs import create_job

    params = {k: v for k in ("views", "head_epochs", "finetune_epochs", "train_processes")
              if (v := getattr(args, k)) is not None}
    job = create_job(_db(args), actor=cli_actor(), params=params)
    print(f"queued training job {job.job_id}; run 'skinstation engine worker' to process it")
    return 0


@_reports_errors
def cmd_jobs(args: argparse.Namespace) -> int:
    """List training jobs."""
    from skinstation.engine.retraining.jobs import get_job, list_jobs

    db = _db(args)
    if args.job_id:
        print(_json(get_job(db, args.job_id).model_dump()))
        return 0
    for job in list_jobs(db):
        print(f"{job.job_id:4d}  {job.state:9s}  {job.outcome or '-':8s}  "
              f"{job.candidate_version or '-'}  requested by {job.requested_by}")
    return 0


def _figures(metrics: dict[str, Any] | None) -> str:
    """``BA 0.812 / referral sens 0.903`` of a metrics summary (``-`` when none)."""
    ba = (metrics or {}).get("balanced_accuracy")
    sens = ((metrics or {}).get("referral") or {}).get("sensitivity")
    if ba is None:
        return "-"
    return f"BA {ba:.3f}" + ("" if sens is None else f" / referral sens {sens:.3f}")


@_reports_errors
def cmd_models_list(args: argparse.Namespace) -> int:
    """List model versions: the file's claimed test metrics and the gate's measured ones."""
    from skinstation.engine.models.service import list_versions

    for v in list_versions(_db(args)):
        claimed = v.claimed_metrics.get("test")
        measured = (v.gate_metrics or {}).get("locked_test")
        print(f"{'*' if v.deployed else ' '} {v.version}  {v.status}  parent "
              f"{v.parent_version or '-'}  by {v.decided_by or v.created_by}  claimed "
              f"{_figures(claimed)}  gate {_figures(measured) if measured else 'not run'}")
    return 0


@_reports_errors
def cmd_models_import(args: argparse.Namespace) -> int:
    """Verify a model file and register it as a candidate (the first one is deployed)."""
    from skinstation.engine.accounts.service import cli_actor
    from skinstation.engine.models.imports import import_model

    done = import_model(_db(args), Path(args.file), actor=cli_actor(), force=args.force,
                        reason=args.reason)
    version = done.version.version
    if done.deployment is not None:
        why = ("the first model" if done.how == "first"
               else "forced past the promotion gate")
        print(f"registered {version} and deployed it as deployment "
              f"{done.deployment.manifest['deployment']} ({why})")
    elif done.how == "known":
        print(f"{version} is already registered ({done.version.status}); nothing changed")
    else:
        print(f"registered {version} as a candidate; stations keep the current model until "
              f"it passes the gate: skinstation engine models gate {version}")
    return 0


@_reports_errors
def cmd_models_gate(args: argparse.Namespace) -> int:
    """Run the promotion gate on a candidate; promote and deploy it if it passes."""
    from skinstation.engine.accounts.service import cli_actor
    from skinstation.engine.retraining.admission import gate_candidate

    log = (lambda message: None) if args.quiet else print
    outcome = gate_candidate(_db(args), args.version, actor=cli_actor(), log=log)
    gate = outcome.report["gate"]
    print(f"{outcome.version}: {outcome.outcome} (gate against "
          f"{outcome.report['current_version']} on {outcome.report['locked_test_images']} "
          f"locked-test images)")
    for reason in gate["reasons"]:
        print(f"  {reason}")
    return 0 if outcome.outcome == "promoted" else 1


@_reports_errors
def cmd_models_rollback(args: argparse.Namespace) -> int:
    """Deploy the previous (or a named) promoted version again."""
    from skinstation.engine.accounts.service import cli_actor
    from skinstation.engine.models.service import rollback

    signed = rollback(_db(args), actor=cli_actor(), to_version=args.to, reason=args.reason)
    print(f"rolled back to {signed.manifest['version']} (deployment "
          f"{signed.manifest['deployment']})")
    return 0


@_reports_errors
def cmd_audit(args: argparse.Namespace) -> int:
    """Print the newest audit rows, or (``--verify``) check the log's hash chain."""
    from skinstation.engine.audit import service as audit

    db = _db(args)
    if args.verify:
        with db.transaction() as session:
            report = audit.verify(session)
        print(report.summary("engine audit log"))
        return 0 if report.intact else 1
    with db.transaction() as session:
        rows = audit.query(session, actor=args.actor, action=args.action, limit=100_000)
    for row in rows[-args.limit:]:
        print(f"{row.occurred_at:%Y-%m-%d %H:%M:%S}  {row.actor}  {row.action}  "
              f"{row.entity_type or ''}:{row.entity_id or ''}  {json.dumps(row.detail)}")
    return 0


def register_engine_commands(commands: Any) -> None:
    """Add ``skinstation engine ...`` to the top-level subparsers."""
    engine = commands.add_parser("engine", help="the central engine (API, worker, admin)")
    sub = engine.add_subparsers(dest="engine_command", required=True)
    sub.add_parser("init", help="migrate the database, create the signing key").set_defaults(
        handler=cmd_init)

    serve = sub.add_parser("serve", help="serve the HTTP API (uvicorn)")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8443)
    serve.add_argument("--workers", type=int, default=1)
    serve.add_argument("--ssl-certfile")
    serve.add_argument("--ssl-keyfile")
    serve.add_argument("--allow-plain-http", action="store_true",
                       help="plain HTTP on a non-loopback address (TLS proxy in front)")
    serve.add_argument("--log-level", default="info")
    serve.add_argument("--graceful-timeout", type=float, default=10.0,
                       help="seconds open connections get to finish on shutdown")
    serve.add_argument("--classify-threads", type=int,
                       help="classification threads per worker (default 1)")
    serve.add_argument("--classify-queue", type=int,
                       help="classify calls that may wait per worker before 503 (default 8)")
    serve.set_defaults(handler=cmd_serve)

    worker = sub.add_parser("worker", help="run retraining jobs (separate from the API)")
    worker.add_argument("--once", action="store_true", help="run at most one job and exit")
    worker.add_argument("--until-idle", action="store_true", help="exit when no job is queued")
    worker.add_argument("--poll-seconds", type=float, default=5.0)
    worker.set_defaults(handler=cmd_worker)

    for role in ("admin", "dermatologist"):
        account = sub.add_parser(f"create-{role}", help=f"create a {role} account")
        account.add_argument("username")
        account.add_argument("--display-name", default="")
        account.add_argument("--password-stdin", action="store_true")
        account.set_defaults(handler=_create_account(role))

    code = sub.add_parser("enrollment-code", help="issue a one-time station enrollment code")
    code.add_argument("station_name")
    code.set_defaults(handler=cmd_enrollment_code)
    sub.add_parser("stations", help="list stations").set_defaults(handler=cmd_stations)
    revoke = sub.add_parser("revoke-station", help="revoke a station's credential")
    revoke.add_argument("station_id", type=int)
    revoke.set_defaults(handler=cmd_revoke)

    train = sub.add_parser("train", help="queue a retraining job")
    for option in ("views", "head-epochs", "finetune-epochs", "train-processes"):
        train.add_argument(f"--{option}", type=int)
    train.set_defaults(handler=cmd_train)
    jobs = sub.add_parser("jobs", help="list training jobs, or show one")
    jobs.add_argument("job_id", type=int, nargs="?")
    jobs.set_defaults(handler=cmd_jobs)

    models = sub.add_parser("models", help="model versions").add_subparsers(
        dest="models_command", required=True)
    models.add_parser("list", help="list versions (* = deployed), claimed vs gate metrics"
                      ).set_defaults(handler=cmd_models_list)
    imported = models.add_parser(
        "import", help="register a model file as a candidate (the first model is deployed)")
    imported.add_argument("file")
    imported.add_argument("--force", action="store_true",
                          help="deploy it to every station without the gate (needs --reason)")
    imported.add_argument("--reason", help="why --force skips the gate (audited)")
    imported.set_defaults(handler=cmd_models_import)
    gate = models.add_parser("gate", help="measure a candidate on the locked test set; "
                             "promote and deploy it if it is not worse than the current one")
    gate.add_argument("version")
    gate.add_argument("--quiet", action="store_true", help="print only the verdict")
    gate.set_defaults(handler=cmd_models_gate)
    back = models.add_parser("rollback", help="deploy the previous model again")
    back.add_argument("--to", help="version to deploy (default: the one before)")
    back.add_argument("--reason", default="rollback")
    back.set_defaults(handler=cmd_models_rollback)

    register_provider_commands(sub, _db, _reports_errors)
    register_key_commands(sub, _db, _reports_errors)

    audit = sub.add_parser("audit", help="print the audit log")
    audit.add_argument("--actor")
    audit.add_argument("--action")
    audit.add_argument("--limit", type=int, default=50)
    audit.add_argument("--verify", action="store_true",
                       help="check the hash chain instead (prints the head hash to note down)")
    audit.set_defaults(handler=cmd_audit)
