"""A logged-in operator's session, with an inactivity timeout."""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from skinstation.auth.errors import SessionExpiredError
from skinstation.core.timeutil import Clock
from skinstation.storage.models import Role


@dataclass(eq=False)
class Session:
    """An operator's login, valid until ``timeout`` passes without activity or it is ended.

    Call :meth:`touch` on operator activity. :meth:`AuthService.check
    <skinstation.auth.service.AuthService.check>` also checks the account is still enabled.

    Attributes:
        operator_id: The operator's id.
        username: Their username.
        display_name: Their name as shown in the UI.
        role: Their role when they logged in.
        timeout: Inactivity that ends the session.
        clock: Source of "now".
        started_at: Login time.
        last_activity: Time of the last :meth:`touch` (or the login).
        ended_reason: Why it was ended, or ``None`` while it has not been.
        must_change_password: An administrator reset the password: only a password change
            is allowed until the operator chose a new one.
    """

    operator_id: int
    username: str
    display_name: str
    role: Role
    timeout: timedelta
    clock: Clock = field(repr=False)
    started_at: datetime
    last_activity: datetime
    ended_reason: str | None = None
    must_change_password: bool = False
    token: str = field(default_factory=lambda: secrets.token_urlsafe(24), repr=False)

    @property
    def expires_at(self) -> datetime:
        """When the session times out if there is no further activity."""
        return self.last_activity + self.timeout

    @property
    def timed_out(self) -> bool:
        """True once ``timeout`` has passed since the last activity."""
        return self.clock() >= self.expires_at

    @property
    def expired(self) -> bool:
        """True if timed out or ended (logout, account disabled): log in again."""
        return self.ended_reason is not None or self.timed_out

    def touch(self) -> None:
        """Record operator activity, pushing the timeout back.

        Raises:
            SessionExpiredError: If the session has already expired (it is not revived).
        """
        if self.expired:
            raise SessionExpiredError(self.expiry_message())
        self.last_activity = self.clock()

    def end(self, reason: str) -> None:
        """End the session (idempotent: the first reason is kept)."""
        if self.ended_reason is None:
            self.ended_reason = reason

    def expiry_message(self) -> str:
        """The message to show when this session can no longer be used."""
        if self.ended_reason is not None:
            return f"Your session has ended ({self.ended_reason}); please log in again."
        minutes = self.timeout.total_seconds() / 60
        return (
            f"Your session timed out after {minutes:g} minutes without activity; "
            "please log in again."
        )
