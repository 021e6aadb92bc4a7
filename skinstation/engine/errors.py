"""Errors of the engine's services; the HTTP layer maps each class to one status code."""

from __future__ import annotations


class EngineError(Exception):
    """Base class of every engine service error (HTTP 400)."""

    status_code = 400


class UnauthorizedError(EngineError):
    """Missing, wrong, expired or revoked credential (HTTP 401)."""

    status_code = 401


class ForbiddenError(EngineError):
    """Authenticated, but the role may not do this (HTTP 403)."""

    status_code = 403


class NotFoundError(EngineError):
    """No such row, or not visible to the caller (HTTP 404)."""

    status_code = 404


class ConflictError(EngineError):
    """The request contradicts stored data, e.g. the same capture uid with other bytes (409)."""

    status_code = 409


class TooLargeError(EngineError):
    """The upload exceeds a configured size limit (HTTP 413)."""

    status_code = 413


class InvalidError(EngineError):
    """The request is malformed or its content fails a check (HTTP 422)."""

    status_code = 422


class LockedError(EngineError):
    """The account is locked after repeated failed logins (HTTP 423)."""

    status_code = 423


class RateLimitedError(EngineError):
    """A provider's per-minute or per-day quota is used up (HTTP 429 with Retry-After).

    Args:
        message: What was exceeded.
        retry_after: Whole seconds until the quota window resets.
    """

    status_code = 429

    def __init__(self, message: str, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = max(1, int(retry_after))


class UnavailableError(EngineError):
    """The engine cannot serve the request now: inference queue full, no model (HTTP 503).

    Args:
        message: Why.
        retry_after: Whole seconds after which a retry may succeed.
    """

    status_code = 503

    def __init__(self, message: str, retry_after: int = 1) -> None:
        super().__init__(message)
        self.retry_after = max(1, int(retry_after))
