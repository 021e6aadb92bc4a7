"""Serving the engine API with uvicorn (a real ASGI server), over HTTPS by default.

The parent process migrates the database and makes sure a signing key is registered, then
uvicorn starts ``workers`` processes that each import :func:`create_app`. Plain HTTP is only
allowed on a loopback address, or behind a TLS-terminating proxy with ``allow_plain_http``.
"""

from __future__ import annotations

import logging
import os
import socket
from pathlib import Path

from skinstation.core.files import UnsafePermissionsError, private_file
from skinstation.core.network import is_loopback
from skinstation.engine.accounts.service import cli_actor
from skinstation.engine.database import open_engine_database
from skinstation.engine.errors import InvalidError
from skinstation.engine.models.signing import ensure_signing_key
from skinstation.engine.providers.inference_pool import ENV_PREFIX
from skinstation.settings import Settings

log = logging.getLogger(__name__)


def prepare(settings: Settings) -> str:
    """Migrate the database and ensure the signing key; returns its public key (base64)."""
    db = open_engine_database(settings)
    try:
        return ensure_signing_key(db, actor=cli_actor())
    finally:
        db.dispose()


def check_tls_key(path: Path) -> Path:
    """Make the TLS private key file owner-only (fixed with a logged warning) or refuse it.

    A symbolic link (e.g. certbot's ``live/`` folder) is checked at its target.

    Returns:
        The checked file.

    Raises:
        InvalidError: The file is missing, or open to others and owned by another user.
    """
    target = Path(path).expanduser().resolve()
    if not target.is_file():
        raise InvalidError(f"TLS key file {path} not found")
    try:
        private_file(target)
    except UnsafePermissionsError as error:
        raise InvalidError(f"refusing the TLS key: {error}") from error
    return target


def serve(
    settings: Settings,
    *,
    host: str = "127.0.0.1",
    port: int = 8443,
    workers: int = 1,
    ssl_certfile: str | None = None,
    ssl_keyfile: str | None = None,
    allow_plain_http: bool = False,
    log_level: str = "info",
    graceful_timeout: float = 10.0,
    classify_threads: int | None = None,
    classify_queue: int | None = None,
) -> None:
    """Run the API until interrupted.

    ``classify_threads`` and ``classify_queue`` size each worker's inference pool (see
    :mod:`skinstation.engine.providers.inference_pool`); the workers read them, and the PyTorch
    threads per worker (default: cores / workers), from ``SKINSTATION_ENGINE_CLASSIFY_*``.

    Raises:
        InvalidError: Plain HTTP on a non-loopback address without ``allow_plain_http``,
            only one of the certificate and key files, or a TLS key others may read that
            cannot be made owner-only (see :func:`check_tls_key`).
    """
    if bool(ssl_certfile) != bool(ssl_keyfile):
        raise InvalidError("give both --ssl-certfile and --ssl-keyfile")
    if not ssl_certfile and not is_loopback(host) and not allow_plain_http:
        raise InvalidError(
            f"refusing plain HTTP on {host}: give --ssl-certfile/--ssl-keyfile, or "
            "--allow-plain-http when a TLS-terminating load balancer is in front"
        )
    if ssl_keyfile:
        check_tls_key(Path(ssl_keyfile))
    import uvicorn
    from uvicorn.supervisors import Multiprocess

    prepare(settings)
    # The worker processes read their inference pool's size from the environment they inherit.
    if classify_threads is not None:
        os.environ[ENV_PREFIX + "THREADS"] = str(classify_threads)
    if classify_queue is not None:
        os.environ[ENV_PREFIX + "QUEUE"] = str(classify_queue)
    torch_threads = max(1, (os.cpu_count() or 1) // max(1, workers))
    os.environ.setdefault(ENV_PREFIX + "TORCH_THREADS", str(torch_threads))
    config = uvicorn.Config(
        "skinstation.engine.app:create_app", factory=True, host=host, port=port,
        workers=workers, ssl_certfile=ssl_certfile, ssl_keyfile=ssl_keyfile,
        log_level=log_level, proxy_headers=allow_plain_http,
        timeout_graceful_shutdown=max(1, round(graceful_timeout)),
    )
    if workers > 1:
        Multiprocess(config, sockets=[listening_socket(host, port)]).run()
    else:
        config.load_app()
        uvicorn.Server(config).run()


def listening_socket(host: str, port: int) -> socket.socket:
    """The shared listening socket of the worker processes, created with ``IPPROTO_TCP``.

    uvicorn's own ``bind_socket`` leaves the protocol at 0; accepted connections inherit it and
    asyncio then skips ``TCP_NODELAY``, which costs every keep-alive request ~40 ms on Linux
    (Kludex/uvicorn#3149).
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.set_inheritable(True)
    return sock
