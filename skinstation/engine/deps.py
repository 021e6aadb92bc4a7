"""Request plumbing: the database, who is calling, typed parameters, limits and error responses.

Path and query integers use :data:`RowId`, :data:`Cursor` and :data:`Limit`, so a value no
database column holds is refused with 422 before any query runs.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable
from typing import Annotated, Any

from fastapi import Depends, HTTPException, Path, Query, Request
from fastapi.responses import JSONResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.exc import DataError, StatementError

from skinstation.core.images import ImageError, ImageLimits
from skinstation.core.validation import MAX_DB_INTEGER
from skinstation.engine.accounts import service as accounts
from skinstation.engine.accounts.models import AccountRole
from skinstation.engine.accounts.service import AccountPrincipal
from skinstation.engine.database import EngineDatabase
from skinstation.engine.errors import EngineError, UnauthorizedError
from skinstation.engine.stations import service as stations
from skinstation.engine.stations.service import StationPrincipal
from skinstation.engine.tokens import STATION_TOKEN_PREFIX

log = logging.getLogger("skinstation.engine.api")

STATION_AUTH_ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"description": "missing, wrong or revoked station token"}}
ACCOUNT_AUTH_ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"description": "not logged in"}, 403: {"description": "wrong role"}}
ADMIN_ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"description": "not logged in"}, 403: {"description": "not an admin"}}
ADMIN = AccountRole.ADMIN

_bearer = HTTPBearer(auto_error=False, description="station token or account login token")
Credentials = Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]


def get_db(request: Request) -> EngineDatabase:
    """The engine database opened by the app."""
    db: EngineDatabase = request.app.state.db
    return db


Db = Annotated[EngineDatabase, Depends(get_db)]


def get_image_limits(request: Request) -> ImageLimits:
    """The pixel sizes every image entering the engine must keep (classification's settings)."""
    limits: ImageLimits = request.app.state.image_limits
    return limits


Limits = Annotated[ImageLimits, Depends(get_image_limits)]

RowId = Annotated[int, Path(ge=1, le=MAX_DB_INTEGER, description="a row id")]
"""A row id in a path: 422 (not a database error) when it cannot be an id."""
Cursor = Annotated[int, Query(ge=0, le=MAX_DB_INTEGER,
                              description="only rows with a larger id (0: from the start)")]
"""The id a page of rows starts after."""
Limit = Annotated[int, Query(ge=1, le=MAX_DB_INTEGER,
                             description="most rows to return (capped by the route)")]
"""How many rows a page may hold; each route caps it at its own maximum."""


def _token(credentials: HTTPAuthorizationCredentials | None, request: Request) -> str:
    if credentials is None or credentials.scheme.lower() != "bearer":
        log.warning("refused %s %s: no bearer token", request.method, request.url.path)
        raise UnauthorizedError("missing bearer token")
    return credentials.credentials


def station_principal(credentials: Credentials, request: Request, db: Db) -> StationPrincipal:
    """The authenticated station (401 otherwise; nothing is written for a refused token)."""
    try:
        return stations.authenticate(db, _token(credentials, request))
    except UnauthorizedError as error:
        log.warning("refused %s %s: %s", request.method, request.url.path, error)
        raise


def account_principal(credentials: Credentials, request: Request, db: Db) -> AccountPrincipal:
    """The logged-in account (401 otherwise)."""
    return accounts.authenticate(db, _token(credentials, request))


def any_principal(credentials: Credentials, request: Request,
                  db: Db) -> StationPrincipal | AccountPrincipal:
    """A station or an account."""
    token = _token(credentials, request)
    if token.startswith(STATION_TOKEN_PREFIX):
        return stations.authenticate(db, token)
    return accounts.authenticate(db, token)


Station = Annotated[StationPrincipal, Depends(station_principal)]
Account = Annotated[AccountPrincipal, Depends(account_principal)]
AnyPrincipal = Annotated[StationPrincipal | AccountPrincipal, Depends(any_principal)]


async def engine_error_response(_request: Request, error: Exception) -> JSONResponse:
    """JSON ``{"detail": message}`` with the error's status code (and Retry-After if known)."""
    status = getattr(error, "status_code", 500)
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else {}
    retry_after = getattr(error, "retry_after", None)
    if retry_after is not None:
        headers["Retry-After"] = str(retry_after)
    return JSONResponse({"detail": str(error)}, status_code=status, headers=headers or None)


async def image_error_response(_request: Request, error: Exception) -> JSONResponse:
    """A stored image file is missing or failed its sha256 check: a server fault (500)."""
    log.error("storage error: %s", error)
    return JSONResponse({"detail": f"engine storage error: {error}"}, status_code=500)


async def out_of_range_response(request: Request, error: Exception) -> JSONResponse:
    """A value the database cannot hold got past validation: 422, not 500 (the last line).

    Validation refuses such values first (:mod:`skinstation.protocol.fields`, :data:`RowId`);
    this answers for any field it does not yet cover.

    Covers :class:`sqlalchemy.exc.DataError` (PostgreSQL: integer out of range, NUL in text),
    :class:`OverflowError` (SQLite: integer too large) and a statement whose parameter could
    not be converted for that reason. The transaction was rolled back: nothing is stored.
    """
    if (isinstance(error, StatementError) and not isinstance(error, DataError)
            and not isinstance(error.orig, OverflowError)):
        raise error  # another statement error: a server fault, reported as 500
    cause = error.orig if isinstance(error, StatementError) else error
    reason = (str(cause).strip().splitlines() or [type(cause).__name__])[0][:200]
    log.warning("refused %s %s: value out of range (%s)", request.method, request.url.path,
                type(cause).__name__)
    return JSONResponse({"detail": f"a value in the request cannot be stored by the engine's "
                                   f"database ({reason}); nothing stored"}, status_code=422)


ERROR_HANDLERS: dict[type[Exception], Any] = {
    EngineError: engine_error_response,
    ImageError: image_error_response,
    StatementError: out_of_range_response,
    OverflowError: out_of_range_response,
}

ASGIApp = Callable[..., Awaitable[None]]


class BodyTooLargeError(HTTPException):
    """Raised while reading a body that exceeds its limit (FastAPI renders it as 413)."""

    def __init__(self, limit: int) -> None:
        super().__init__(413, f"request body larger than {limit} bytes; nothing stored")


class BodyLimitMiddleware:
    """Refuse request bodies over a limit with 413, and make sure the client hears it.

    A body declared (Content-Length) or found (while streaming) to be over the limit is read
    and discarded up to ``drain_limit`` bytes before the 413 is sent: a client still sending
    would otherwise see a reset connection instead of the answer (and a station would retry
    forever instead of setting the capture aside). Nothing of such a body is kept.

    Args:
        app: The wrapped ASGI app.
        limit_for: Maximum body bytes for a request path (``None``: the default limit).
        default_limit: Limit of every other request.
        drain_limit: Beyond this many bytes the connection is closed without reading more.
    """

    def __init__(self, app: ASGIApp, limit_for: Callable[[str], int | None],
                 default_limit: int = 1 << 20, drain_limit: int = 64 << 20) -> None:
        self.app = app
        self.limit_for = limit_for
        self.default_limit = default_limit
        self.drain_limit = drain_limit

    async def _drain(self, receive: Any, already: int) -> None:
        received, more = already, True
        while more and received <= self.drain_limit:
            message = await receive()
            if message["type"] != "http.request":
                return
            received += len(message.get("body", b""))
            more = message.get("more_body", False)

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        """Pass the request on, counting its body bytes."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.limit_for(scope["path"]) or self.default_limit
        headers = dict(scope.get("headers") or [])
        declared = headers.get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            await self._drain(receive, 0)
            await _send_413(send, limit)
            return
        received = 0
        started = False

        async def counted_receive() -> Any:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    if message.get("more_body", False):
                        await self._drain(receive, received)
                    raise BodyTooLargeError(limit)
            return message

        async def tracked_send(message: Any) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, counted_receive, tracked_send)
        except BodyTooLargeError:
            if not started:
                await _send_413(send, limit)


async def _send_413(send: Any, limit: int) -> None:
    body = json.dumps({"detail": f"request body larger than {limit} bytes; nothing stored"})
    await send({"type": "http.response.start", "status": 413,
                "headers": [(b"content-type", b"application/json"),
                            (b"connection", b"close")]})
    await send({"type": "http.response.body", "body": body.encode()})
