"""Routes for third-party providers (API key) and for administrators managing them."""

from __future__ import annotations

from datetime import date
from typing import Annotated, Any

import anyio.to_thread
from fastapi import APIRouter, Depends, Request, Response
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer
from starlette.datastructures import UploadFile

from skinstation.engine.accounts.models import AccountRole
from skinstation.engine.deps import ADMIN_ERRORS, Account, Db, RowId
from skinstation.engine.errors import EngineError, InvalidError, UnauthorizedError
from skinstation.engine.providers import service as providers
from skinstation.engine.providers.classify import ClassifyService
from skinstation.engine.providers.payloads import parse_form, parse_json
from skinstation.engine.providers.schemas import (
    CLASSIFY_BODY,
    ClassifyOut,
    ErrorOut,
    IssuedKeyOut,
    KeyIn,
    KeyOut,
    ProviderIn,
    ProviderMeOut,
    ProviderOut,
    ProviderUpdate,
    RotateIn,
    UsageOut,
)
from skinstation.engine.providers.service import ProviderPrincipal

router = APIRouter(tags=["providers"])
admin_router = APIRouter(prefix="/admin", tags=["admin: providers"])

_bearer = HTTPBearer(auto_error=False, scheme_name="ProviderKeyBearer",
                     description="Authorization: Bearer spk_<key_id>_<secret>")
_header = APIKeyHeader(name="X-API-Key", auto_error=False, scheme_name="ProviderKeyHeader",
                       description="X-API-Key: spk_<key_id>_<secret>")
ADMIN = AccountRole.ADMIN


def _error(description: str) -> dict[str, Any]:
    return {"model": ErrorOut, "description": description}


KEY_ERRORS: dict[int | str, dict[str, Any]] = {
    401: _error("missing, wrong, revoked or expired API key (nothing stored)"),
    403: _error("the key lacks the scope, or the provider is disabled")}


NO_PROVIDER = {**ADMIN_ERRORS, 404: _error("no such provider")}
NO_KEY = {**ADMIN_ERRORS, 404: _error("no such API key")}


class UnsupportedMediaError(EngineError):
    """The body is neither multipart/form-data nor JSON (HTTP 415)."""

    status_code = 415


async def provider_principal(
    request: Request, db: Db,
    bearer: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    header: Annotated[str | None, Depends(_header)],
) -> ProviderPrincipal:
    """The provider of the API key (401/403 otherwise; nothing is written).

    The body is read first (within the size limit) so a refused client still hears the answer.
    """
    await request.body()
    key = header or (bearer.credentials if bearer else None)
    if not key:
        raise UnauthorizedError("missing API key: send 'Authorization: Bearer spk_...' or "
                                "'X-API-Key: spk_...'")
    return await anyio.to_thread.run_sync(providers.authenticate_key, db, key)


Provider = Annotated[ProviderPrincipal, Depends(provider_principal)]


def classify_service(request: Request) -> ClassifyService:
    """This process's classification service."""
    service: ClassifyService = request.app.state.classify
    return service


Classify = Annotated[ClassifyService, Depends(classify_service)]


@router.post(
    "/classify", response_model=ClassifyOut, openapi_extra=CLASSIFY_BODY,
    responses={**KEY_ERRORS,
               413: _error("image over the size limit (nothing stored)"),
               415: _error("body is neither multipart/form-data nor application/json"),
               422: _error("not an image, truncated, wrong format or size, a bad field, or a "
                           "name field (nothing stored)"),
               429: {**_error("per-minute or per-day quota used up"),
                     "headers": {"Retry-After": {"description": "seconds until the window "
                                                                "resets",
                                                 "schema": {"type": "integer"}}}},
               503: _error("inference queue full or no model deployed; retry after "
                           "Retry-After seconds")},
)
async def classify(request: Request, response: Response, provider: Provider,
                   service: Classify) -> ClassifyOut:
    """Classify one skin image with the engine's current model.

    Send the image as multipart (``image`` file plus form fields) or as JSON
    (``image_base64`` plus the same fields). With ``consent`` true (key scope
    ``submit-for-review``) the image is kept for expert review and re-learning; otherwise
    nothing of it is kept. Response headers: ``X-Request-ID`` and ``X-RateLimit-*``.
    """
    limit = service.db.settings.engine.max_image_bytes
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if kind == "multipart/form-data":
        form = await request.form(max_files=2, max_fields=20)
        fields = {k: v for k, v in form.multi_items() if not isinstance(v, UploadFile)}
        image = form.get("image")
        if "image" in fields:
            raise InvalidError("send 'image' as a file part (e.g. curl -F image=@lesion.jpg)")
        data = await image.read(limit + 1) if isinstance(image, UploadFile) else None
        parsed = parse_form(fields, data, limit)
    elif kind == "application/json":
        try:
            document = await request.json()
        except ValueError:
            raise InvalidError("the body is not valid JSON; nothing stored") from None
        parsed = parse_json(document, limit)
    else:
        raise UnsupportedMediaError(f"content type {kind or 'none'} is not accepted; send "
                                    "multipart/form-data or application/json")
    result = await service.classify(provider, parsed)
    response.headers["X-Request-ID"] = result.request_id
    for name, value in result.rate_limit.items():
        scope, _, window = name.rpartition("_")
        response.headers[f"X-RateLimit-{scope.title()}-{window.title()}"] = str(value)
    body = dict(result.__dict__)
    body.pop("rate_limit")
    return ClassifyOut(**body)


@router.get("/provider/me", response_model=ProviderMeOut, responses=KEY_ERRORS)
def me(provider: Provider) -> ProviderMeOut:
    """The calling provider, key, scopes and quotas."""
    return ProviderMeOut(provider_id=provider.provider_id, name=provider.provider_name,
                         key_id=provider.key_id, scopes=sorted(provider.scopes),
                         requests_per_minute=provider.requests_per_minute,
                         requests_per_day=provider.requests_per_day)


@router.get("/provider/usage", response_model=list[UsageOut],
            responses={**KEY_ERRORS, 422: _error("a bad date, or the range runs backwards or "
                                                 "spans over 366 days")})
def my_usage(provider: Provider, db: Db, start: date | None = None,
             end: date | None = None) -> list[UsageOut]:
    """The calling provider's usage per UTC day (default: the last 30 days)."""
    return providers.usage(db, provider.provider_id, start, end)


@admin_router.post("/providers", response_model=ProviderOut, status_code=201,
                   responses={**ADMIN_ERRORS, 409: _error("a provider of that name exists")})
def create_provider(body: ProviderIn, account: Account, db: Db) -> ProviderOut:
    """Create a provider with its quotas."""
    account.require(ADMIN)
    return providers.create_provider(db, body.name, actor=account.actor, contact=body.contact,
                                     requests_per_minute=body.requests_per_minute,
                                     requests_per_day=body.requests_per_day)


@admin_router.get("/providers", response_model=list[ProviderOut], responses=ADMIN_ERRORS)
def list_providers(account: Account, db: Db) -> list[ProviderOut]:
    """Every provider."""
    account.require(ADMIN)
    return providers.list_providers(db)


@admin_router.patch("/providers/{provider_id}", response_model=ProviderOut,
                    responses=NO_PROVIDER)
def update_provider(provider_id: RowId, body: ProviderUpdate, account: Account,
                    db: Db) -> ProviderOut:
    """Change quotas, or disable (every key refused with 403) / enable a provider."""
    account.require(ADMIN)
    return providers.update_provider(db, provider_id, actor=account.actor,
                                     **body.model_dump(exclude_none=True))


@admin_router.post("/providers/{provider_id}/keys", response_model=IssuedKeyOut,
                   status_code=201, responses=NO_PROVIDER)
def create_key(provider_id: RowId, body: KeyIn, account: Account, db: Db) -> IssuedKeyOut:
    """Issue an API key (shown only in this answer; the engine keeps its sha256)."""
    account.require(ADMIN)
    return providers.create_key(db, provider_id, actor=account.actor, scopes=list(body.scopes),
                                label=body.label)


@admin_router.get("/providers/{provider_id}/keys", response_model=list[KeyOut],
                  responses=NO_PROVIDER)
def list_keys(provider_id: RowId, account: Account, db: Db) -> list[KeyOut]:
    """A provider's keys (never the keys themselves)."""
    account.require(ADMIN)
    return providers.list_keys(db, provider_id)


@admin_router.post("/provider-keys/{key_id}/revoke", response_model=KeyOut,
                   responses=NO_KEY)
def revoke_key(key_id: str, account: Account, db: Db) -> KeyOut:
    """Revoke a key: its next call gets 401."""
    account.require(ADMIN)
    return providers.revoke_key(db, key_id, actor=account.actor)


@admin_router.post("/provider-keys/{key_id}/rotate", response_model=IssuedKeyOut,
                   status_code=201,
                   responses={**NO_KEY, 422: _error("the key is revoked or expired")})
def rotate_key(key_id: str, body: RotateIn, account: Account, db: Db) -> IssuedKeyOut:
    """Replace a key; the old one ends now or after ``grace_seconds``."""
    account.require(ADMIN)
    return providers.rotate_key(db, key_id, actor=account.actor,
                                grace_seconds=body.grace_seconds)


@admin_router.get("/providers/{provider_id}/usage", response_model=list[UsageOut],
                  responses={**NO_PROVIDER, 422: _error("a bad date, or the range runs "
                                                          "backwards or spans over 366 days")})
def provider_usage(provider_id: RowId, account: Account, db: Db, start: date | None = None,
                   end: date | None = None) -> list[UsageOut]:
    """A provider's usage per UTC day (default: the last 30 days)."""
    account.require(ADMIN)
    return providers.usage(db, provider_id, start, end)
