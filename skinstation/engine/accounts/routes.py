"""Routes of the accounts domain: login and logout; admin account creation."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request, Response

from skinstation.engine.accounts import service as accounts
from skinstation.engine.accounts.models import AccountRole
from skinstation.engine.accounts.schemas import AccountIn, AccountOut, LoginRequest, LoginResponse
from skinstation.engine.accounts.throttle import LoginGuard
from skinstation.engine.deps import (
    ACCOUNT_AUTH_ERRORS,
    ADMIN,
    ADMIN_ERRORS,
    Account,
    Credentials,
    Db,
)

admin_router = APIRouter(prefix="/admin", tags=["admin"])
router = APIRouter(tags=["review"])


@admin_router.post("/accounts", response_model=AccountOut, status_code=201,
                   responses={**ADMIN_ERRORS, 409: {"description": "the username is taken"},
                              422: {"description": "a bad field, or a weak password"}})
def create_account(body: AccountIn, account: Account, db: Db) -> AccountOut:
    """Create an administrator or dermatologist account."""
    account.require(ADMIN)
    created = accounts.create_account(db, body.username, body.password, AccountRole(body.role),
                                      display_name=body.display_name, actor=account.actor)
    return AccountOut(account_id=created.account_id, username=created.username,
                      display_name=created.display_name, role=created.role.value)


def login_guard(request: Request) -> LoginGuard:
    """The app's login throttle and hashing pool."""
    guard: LoginGuard = request.app.state.login_guard
    return guard


Guard = Annotated[LoginGuard, Depends(login_guard)]


@router.post("/auth/login", response_model=LoginResponse,
             responses={401: {"description": "wrong username or password"},
                        423: {"description": "account locked"},
                        429: {"description": "too many failed logins from this address or "
                                             "for this username; see Retry-After"},
                        503: {"description": "too many logins in progress; see Retry-After"}})
async def login(body: LoginRequest, request: Request, db: Db, guard: Guard) -> LoginResponse:
    """Log in with an engine account; returns a bearer token.

    The password is checked in the login pool, not on the event loop (see
    :mod:`skinstation.engine.accounts.throttle`).
    """
    client = request.client.host if request.client is not None else None
    return await guard.login(db, body.username, body.password, client)


@router.post("/auth/logout", status_code=204, responses=ACCOUNT_AUTH_ERRORS)
def logout(_account: Account, credentials: Credentials, db: Db) -> Response:
    """End this login."""
    assert credentials is not None
    accounts.logout(db, credentials.credentials)
    return Response(status_code=204)
