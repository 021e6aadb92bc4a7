"""Routes of the accounts domain: login and logout; admin account creation."""

from __future__ import annotations

from fastapi import APIRouter, Response

from skinstation.engine.accounts import service as accounts
from skinstation.engine.accounts.models import AccountRole
from skinstation.engine.accounts.schemas import AccountIn, AccountOut, LoginRequest, LoginResponse
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


@admin_router.post("/accounts", response_model=AccountOut, status_code=201, responses=ADMIN_ERRORS)
def create_account(body: AccountIn, account: Account, db: Db) -> AccountOut:
    """Create an administrator or dermatologist account."""
    account.require(ADMIN)
    created = accounts.create_account(db, body.username, body.password, AccountRole(body.role),
                                      display_name=body.display_name, actor=account.actor)
    return AccountOut(account_id=created.account_id, username=created.username,
                      display_name=created.display_name, role=created.role.value)


@router.post("/auth/login", response_model=LoginResponse,
             responses={401: {"description": "wrong username or password"},
                        423: {"description": "account locked"}})
def login(body: LoginRequest, db: Db) -> LoginResponse:
    """Log in with an engine account; returns a bearer token."""
    return accounts.login(db, body.username, body.password)


@router.post("/auth/logout", status_code=204, responses=ACCOUNT_AUTH_ERRORS)
def logout(_account: Account, credentials: Credentials, db: Db) -> Response:
    """End this login."""
    assert credentials is not None
    accounts.logout(db, credentials.credentials)
    return Response(status_code=204)
