"""HTTP transport to the engine: TLS verified, retried with exponential backoff.

* HTTPS with certificate verification (the system trust store, or ``sync.ca_bundle``).
  Plain ``http://`` is refused unless the engine is on this machine (loopback), and so is
  turning verification off.
* Each request is retried by urllib3's ``Retry`` on connection errors, read errors and 429/5xx
  answers, waiting ``backoff_seconds * 2**n`` between tries. Uploads can be retried safely:
  the engine stores a capture once, whatever the number of attempts. A connection that brought
  a server error is not reused: servers may close it right after the answer (uvicorn does after
  an unhandled exception), and a retry on it would fail as "remote end closed", hiding the
  server error behind a network error.
"""

from __future__ import annotations

from types import TracebackType
from typing import Self
from urllib.parse import urlsplit

import requests
from requests.adapters import HTTPAdapter
from urllib3.connectionpool import ConnectionPool
from urllib3.response import BaseHTTPResponse
from urllib3.util.retry import Retry

from skinstation.core.i18n import KeyedError
from skinstation.core.network import is_loopback as is_loopback
from skinstation.settings import SyncSettings

RETRY_STATUSES = (429, 500, 502, 503, 504)
CONNECT_TIMEOUT_SECONDS = 5.0


class SyncConfigError(KeyedError, ValueError):
    """The sync settings are unsafe or incomplete (no URL, plain http to a remote host...).

    Raised with a text key (``error.sync.*``; see :class:`~skinstation.core.i18n.KeyedError`).
    """


def check_engine_url(url: str, *, verify_tls: bool = True) -> str:
    """Return the engine URL without a trailing slash, or refuse an unsafe one.

    Raises:
        SyncConfigError: Empty, not http(s), plain http to a non-loopback host, or TLS
            verification turned off for a non-loopback host.
    """
    if not url:
        raise SyncConfigError("error.sync.no_url")
    parts = urlsplit(url)
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise SyncConfigError("error.sync.bad_url", url=repr(url))
    local = is_loopback(parts.hostname)
    if parts.scheme == "http" and not local:
        raise SyncConfigError("error.sync.plain_http", host=parts.hostname)
    if not verify_tls and not local:
        raise SyncConfigError("error.sync.no_verify", host=parts.hostname)
    return url.rstrip("/")


class FreshAfterServerError(Retry):
    """urllib3's ``Retry`` that closes the connection of a server error it retries."""

    def increment(self, method: str | None = None, url: str | None = None,
                  response: BaseHTTPResponse | None = None, error: Exception | None = None,
                  _pool: ConnectionPool | None = None,
                  _stacktrace: TracebackType | None = None) -> Self:
        """See :meth:`urllib3.util.retry.Retry.increment`."""
        retry = super().increment(method, url, response, error, _pool, _stacktrace)
        if response is not None and response.status >= 500:
            connection = response.connection
            response.drain_conn()  # the answer is read and the connection back in the pool ...
            if connection is not None:
                connection.close()  # ... closed, so the pool opens a fresh one for the retry
        return retry


def build_session(settings: SyncSettings, *, retries: int | None = None) -> requests.Session:
    """A ``requests`` session with retries/backoff and TLS verification configured."""
    check_engine_url(settings.engine_url, verify_tls=settings.verify_tls)
    count = settings.retries if retries is None else retries
    retry = FreshAfterServerError(
        total=count, connect=count, read=count, status=count, other=0,
        backoff_factor=settings.backoff_seconds, backoff_max=max(1.0, settings.interval_seconds),
        status_forcelist=RETRY_STATUSES, allowed_methods=None, raise_on_status=False,
        respect_retry_after_header=True,
    )
    session = requests.Session()
    adapter = HTTPAdapter(max_retries=retry, pool_connections=2, pool_maxsize=4)
    session.mount("https://", adapter)
    session.mount("http://", adapter)
    session.verify = (settings.ca_bundle or True) if settings.verify_tls else False
    session.headers["User-Agent"] = "skinstation-sync/1"
    return session


def timeouts(settings: SyncSettings) -> tuple[float, float]:
    """(connect, read) timeouts of one request."""
    return (min(CONNECT_TIMEOUT_SECONDS, settings.timeout_seconds), settings.timeout_seconds)
