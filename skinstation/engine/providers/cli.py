"""``skinstation engine provider ...``: providers, their API keys and usage, from the server.

Each command opens the engine database, calls one :mod:`skinstation.engine.providers.service`
function and prints the result; it acts as ``cli:<os user>`` in the audit log. A new key is
printed once, on its own line, so it can be piped into a secret manager.
"""

from __future__ import annotations

import argparse
import datetime as dt
from collections.abc import Callable
from typing import Any

Handler = Callable[[argparse.Namespace], int]
SCOPES = ("classify", "submit-for-review")  # skinstation.engine.providers.models.KeyScope


def _services() -> tuple[Any, Callable[[], str]]:
    """The provider services and the CLI's audit actor (imported only when a command runs)."""
    from skinstation.engine.accounts.service import cli_actor
    from skinstation.engine.providers import service as providers

    return providers, cli_actor


def _describe_key(info: Any) -> str:
    if info.revoked_at is not None:
        state = f"revoked {info.revoked_at:%Y-%m-%d %H:%M}"
    elif info.expires_at is not None:
        state = f"{'active' if info.active else 'expired'} until {info.expires_at:%Y-%m-%d %H:%M}"
    else:
        state = "active"
    used = f"{info.last_used_at:%Y-%m-%d %H:%M}" if info.last_used_at else "never"
    return (f"{info.key_id}  {','.join(info.scopes)}  {state}  last used {used}"
            + (f"  ({info.label})" if info.label else ""))


def _issued(issued: Any, what: str) -> int:
    print(f"{what} key {issued.key_id} ({','.join(issued.scopes)}); shown once, "
          "store it now:")
    print(issued.key)
    return 0


def register_provider_commands(sub: Any, db: Callable[[argparse.Namespace], Any],
                               wrap: Callable[[Handler], Handler]) -> None:
    """Add ``provider ...`` to the ``skinstation engine`` subcommands.

    Args:
        sub: The engine command's subparsers.
        db: Opens the engine database from the parsed arguments.
        wrap: Turns engine errors into ``error: ...`` and exit status 1.
    """

    def create(args: argparse.Namespace) -> int:
        providers, cli_actor = _services()
        info = providers.create_provider(db(args), args.name, actor=cli_actor(),
                                         contact=args.contact,
                                         requests_per_minute=args.per_minute,
                                         requests_per_day=args.per_day)
        print(f"created provider {info.provider_id} {info.name!r} ({info.requests_per_minute}"
              f"/min, {info.requests_per_day}/day)")
        return 0

    def listing(args: argparse.Namespace) -> int:
        providers, _ = _services()
        for p in providers.list_providers(db(args)):
            print(f"{p.provider_id:4d}  {p.name}  {p.requests_per_minute}/min  "
                  f"{p.requests_per_day}/day  {'disabled' if p.disabled else 'active'}")
        return 0

    def update(args: argparse.Namespace) -> int:
        providers, cli_actor = _services()
        info = providers.update_provider(db(args), args.provider, actor=cli_actor(),
                                         requests_per_minute=args.per_minute,
                                         requests_per_day=args.per_day, disabled=args.disabled)
        print(f"provider {info.provider_id} {info.name!r}: {info.requests_per_minute}/min, "
              f"{info.requests_per_day}/day, {'disabled' if info.disabled else 'active'}")
        return 0

    def key_create(args: argparse.Namespace) -> int:
        providers, cli_actor = _services()
        issued = providers.create_key(db(args), args.provider, actor=cli_actor(),
                                      scopes=args.scope or ["classify"],
                                      label=args.label)
        return _issued(issued, "new")

    def key_list(args: argparse.Namespace) -> int:
        providers, _ = _services()
        for info in providers.list_keys(db(args), args.provider):
            print(_describe_key(info))
        return 0

    def key_revoke(args: argparse.Namespace) -> int:
        providers, cli_actor = _services()
        info = providers.revoke_key(db(args), args.key_id, actor=cli_actor())
        print(f"key {info.key_id} revoked at {info.revoked_at:%Y-%m-%d %H:%M:%S} UTC")
        return 0

    def key_rotate(args: argparse.Namespace) -> int:
        providers, cli_actor = _services()
        issued = providers.rotate_key(db(args), args.key_id, actor=cli_actor(),
                                      grace_seconds=args.grace_seconds)
        ends = "now" if not args.grace_seconds else f"in {args.grace_seconds:g} s"
        print(f"key {args.key_id} replaced; it stops working {ends}")
        return _issued(issued, "new")

    def usage(args: argparse.Namespace) -> int:
        providers, _ = _services()
        database = db(args)
        names = [args.provider] if args.provider else [
            p.name for p in providers.list_providers(database)]
        rows = [(name, row) for name in names
                for row in providers.usage(database, name, args.start, args.end)]
        print("provider  day  requests  classified  not_assessable  submitted  rejected  "
              "failed  throttled  busy")
        for name, row in rows:
            print(f"{name}  {row.day}  {row.requests}  {row.classified}  "
                  f"{row.not_assessable}  {row.submitted}  {row.rejected}  {row.failed}  "
                  f"{row.throttled}  {row.busy}")
        return 0

    provider = sub.add_parser("provider", help="third-party providers, API keys and usage")
    commands = provider.add_subparsers(dest="provider_command", required=True)
    created = commands.add_parser("create", help="create a provider")
    created.add_argument("name")
    created.add_argument("--contact", default="")
    created.add_argument("--per-minute", type=int, default=60, help="default 60")
    created.add_argument("--per-day", type=int, default=10_000, help="default 10000")
    created.set_defaults(handler=wrap(create))
    commands.add_parser("list", help="list providers").set_defaults(handler=wrap(listing))
    updated = commands.add_parser("update", help="change quotas, disable or enable")
    updated.add_argument("provider", help="name or id")
    updated.add_argument("--per-minute", type=int)
    updated.add_argument("--per-day", type=int)
    state = updated.add_mutually_exclusive_group()
    state.add_argument("--disable", dest="disabled", action="store_true", default=None)
    state.add_argument("--enable", dest="disabled", action="store_false")
    updated.set_defaults(handler=wrap(update))

    keys = commands.add_parser("key", help="API keys").add_subparsers(dest="key_command",
                                                                       required=True)
    new = keys.add_parser("create", help="issue a key (printed once)")
    new.add_argument("provider", help="name or id")
    new.add_argument("--scope", action="append", choices=SCOPES,
                     help="repeat for several (default: classify)")
    new.add_argument("--label", default="")
    new.set_defaults(handler=wrap(key_create))
    listed = keys.add_parser("list", help="a provider's keys (never the keys themselves)")
    listed.add_argument("provider", help="name or id")
    listed.set_defaults(handler=wrap(key_list))
    revoked = keys.add_parser("revoke", help="revoke a key")
    revoked.add_argument("key_id")
    revoked.set_defaults(handler=wrap(key_revoke))
    rotated = keys.add_parser("rotate", help="replace a key (printed once)")
    rotated.add_argument("key_id")
    rotated.add_argument("--grace-seconds", type=float, default=0.0,
                         help="the old key keeps working this long (default: stops now)")
    rotated.set_defaults(handler=wrap(key_rotate))

    used = commands.add_parser("usage", help="usage per provider and UTC day")
    used.add_argument("provider", nargs="?", help="name or id (default: every provider)")
    used.add_argument("--from", dest="start", type=dt.date.fromisoformat,
                      help="first day, YYYY-MM-DD (default: 29 days before --to)")
    used.add_argument("--to", dest="end", type=dt.date.fromisoformat,
                      help="last day (default: today, UTC)")
    used.set_defaults(handler=wrap(usage))
