"""``skinstation engine keys rotate``: a new data key, everything re-encrypted under it."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

Handler = Callable[[argparse.Namespace], int]


def register_key_commands(sub: Any, db: Callable[[argparse.Namespace], Any],
                          wrap: Callable[[Handler], Handler]) -> None:
    """Add ``keys rotate`` to the ``skinstation engine`` subcommands.

    Args:
        sub: The engine command's subparsers.
        db: Opens the engine database from the parsed arguments.
        wrap: Turns engine errors into ``error: ...`` and exit status 1.
    """

    def rotate(args: argparse.Namespace) -> int:
        import sys

        from skinstation.core.crypto import ENGINE_KEYS
        from skinstation.core.images import ImageError
        from skinstation.core.keyring_file import KeystoreError
        from skinstation.engine.accounts.service import cli_actor
        from skinstation.engine.keys.service import rotate_engine_keys

        try:
            report = rotate_engine_keys(db(args), cli_actor())
        except (KeystoreError, ImageError) as error:
            print(f"error: {error}", file=sys.stderr)
            return 1
        print("\n".join(report.lines(f"skinstation-secrets/{ENGINE_KEYS}")))
        return 0

    keys = sub.add_parser("keys", help="the engine's data keys (encryption at rest)")
    keys_sub = keys.add_subparsers(dest="keys_command", required=True)
    keys_sub.add_parser(
        "rotate", help="make a new data key current and re-encrypt images, pseudonyms, names, "
        "end-user ids and notes under it (old keys stay for older backups)",
    ).set_defaults(handler=wrap(rotate))
