"""Typed calls to the engine API, with the errors the sync logic needs to tell apart.

* :class:`EngineUnreachableError`: network down, timeout, or a malformed answer — try again
  later, nothing is wrong with the data. :class:`EngineServerError` (a subclass): a 5xx that
  outlasted the retries, with its status (the push counts these per capture).
* :class:`CredentialRejectedError`: 401 — the token is wrong or revoked; stop syncing.
* :class:`EngineRejectedError`: another 4xx — the engine refuses this request (e.g. a corrupt
  capture: 422, other bytes under a known uid: 409).
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any, TypeVar

import requests
from pydantic import TypeAdapter, ValidationError

from skinstation.core.i18n import KeyedError
from skinstation.protocol.erasures import ErasureNotice, ErasureReceipt
from skinstation.protocol.manifest import SignedManifest
from skinstation.protocol.messages import (
    EnrollRequest,
    EnrollResponse,
    ReviewRecord,
    StationEvent,
    StationEventKind,
    StationIdentity,
)
from skinstation.protocol.paths import API_PREFIX, CAPTURE_IMAGE_FIELD, CAPTURE_METADATA_FIELD
from skinstation.protocol.uploads import CaptureMetadata, CaptureReceipt
from skinstation.settings import SyncSettings
from skinstation.sync.transport import build_session, check_engine_url, timeouts

MEDIA_TYPES = {"jpg": "image/jpeg", "png": "image/png", "tif": "image/tiff",
               "bmp": "image/bmp", "webp": "image/webp"}


class SyncError(KeyedError, RuntimeError):
    """Base class of sync failures (raised with a text key, ``error.sync.*``)."""


class EngineUnreachableError(SyncError):
    """The engine could not be reached or answered with a server error (retry later)."""


class EngineServerError(EngineUnreachableError):
    """The engine answered with a server error (5xx) after the retries."""

    def __init__(self, http_status: int, key: str, **values: Any) -> None:
        super().__init__(key, **values)
        self.status = http_status


class EngineRejectedError(SyncError):
    """The engine refused the request (4xx other than 401)."""

    def __init__(self, status: int, detail: str) -> None:
        super().__init__("error.sync.rejected", status=status, detail=detail)
        self.status = status
        self.detail = detail


class CredentialRejectedError(EngineRejectedError):
    """401: the station token is wrong or revoked."""


class EngineClient:
    """The engine API as Python calls.

    Args:
        settings: Sync settings (URL, TLS, retries, timeouts).
        token: The station's bearer token (not needed to enroll).
        session: A prepared session (built from ``settings`` if None).
    """

    def __init__(self, settings: SyncSettings, token: str | None = None,
                 session: requests.Session | None = None) -> None:
        self.settings = settings
        self.base = check_engine_url(settings.engine_url, verify_tls=settings.verify_tls)
        self.session = session or build_session(settings)
        self.timeout = timeouts(settings)
        if token:
            self.session.headers["Authorization"] = f"Bearer {token}"

    def close(self) -> None:
        """Close pooled connections."""
        self.session.close()

    def _drop_connections(self) -> None:
        """Close the pooled connections; the next request opens a fresh one."""
        for adapter in self.session.adapters.values():
            adapter.close()

    def _request(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        url = f"{self.base}{API_PREFIX}{path}"
        try:
            # verify passed per request: requests would otherwise let REQUESTS_CA_BUNDLE in the
            # environment override the configured CA bundle.
            response = self.session.request(method, url, timeout=self.timeout,
                                            verify=self.session.verify, **kwargs)
        except requests.exceptions.SSLError as error:
            raise EngineUnreachableError("error.sync.tls", url=self.base,
                                         reason=str(error)) from None
        except requests.exceptions.RequestException as error:
            raise EngineUnreachableError("error.sync.unreachable", url=self.base,
                                         reason=str(error)) from None
        if response.status_code >= 500:
            detail = _detail(response)
            self._drop_connections()  # the server may be closing this one (see transport)
            raise EngineServerError(response.status_code, "error.sync.server",
                                    status=response.status_code, method=method, path=path,
                                    detail=detail)
        if response.status_code == 401:
            raise CredentialRejectedError(401, _detail(response))
        if response.status_code >= 400:
            raise EngineRejectedError(response.status_code, _detail(response))
        return response

    def enroll(self, code: str, station_ref: str) -> EnrollResponse:
        """Exchange a one-time code for a credential (see ``POST /enroll``)."""
        body = EnrollRequest(code=code, station_ref=station_ref).model_dump(mode="json")
        return _parse(EnrollResponse, self._request("POST", "/enroll", json=body))

    def me(self) -> StationIdentity:
        """Who the engine thinks this station is (checks the token)."""
        return _parse(StationIdentity, self._request("GET", "/station/me"))

    def upload_capture(self, document: CaptureMetadata,
                       image: bytes) -> tuple[int, CaptureReceipt]:
        """Upload one capture; returns (201 stored | 200 already stored, receipt)."""
        capture = document.capture
        media = MEDIA_TYPES.get(capture.image_format, "application/octet-stream")
        files = {
            CAPTURE_METADATA_FIELD: (None, json.dumps(document.wire()), "application/json"),
            CAPTURE_IMAGE_FIELD: (f"{capture.uid}.{capture.image_format}", image, media),
        }
        response = self._request("POST", "/captures", files=files)
        return response.status_code, _parse(CaptureReceipt, response)

    def capture_receipt(self, uid: str) -> CaptureReceipt | None:
        """What the engine holds for a capture uid (``None`` if nothing)."""
        try:
            return _parse(CaptureReceipt, self._request("GET", f"/captures/{uid}"))
        except EngineRejectedError as error:
            if error.status == 404:
                return None
            raise

    def reviews(self, after: int, limit: int = 500) -> list[ReviewRecord]:
        """Engine reviews of this station's captures with id > ``after``."""
        response = self._request("GET", "/reviews", params={"after": after, "limit": limit})
        return _parse(_REVIEW_LIST, response)

    def current_manifest(self) -> SignedManifest | None:
        """The current model's manifest (as signed) and signature, or ``None``."""
        try:
            return _parse(SignedManifest, self._request("GET", "/models/current"))
        except EngineRejectedError as error:
            if error.status == 404 and not isinstance(error, CredentialRejectedError):
                return None
            raise

    def download_model(self, version: str, target: Path, *, expected_size: int,
                       expected_sha256: str) -> Path:
        """Stream a model file to ``target``, checking its size and sha256 on the way.

        Raises:
            EngineRejectedError: The bytes differ from the signed manifest (file removed).
        """
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = target.with_name(f".{target.name}.partial")
        digest, size = hashlib.sha256(), 0
        response = self._request("GET", f"/models/{version}/file", stream=True)
        try:
            with open(partial, "wb") as handle:
                for chunk in response.iter_content(1 << 20):
                    size += len(chunk)
                    if size > expected_size:
                        break
                    digest.update(chunk)
                    handle.write(chunk)
                handle.flush()
                os.fsync(handle.fileno())
        except requests.exceptions.RequestException as error:
            partial.unlink(missing_ok=True)
            raise EngineUnreachableError("error.sync.download", reason=str(error)) from None
        finally:
            response.close()
        if size != expected_size or digest.hexdigest() != expected_sha256:
            partial.unlink(missing_ok=True)
            raise EngineRejectedError(
                200, f"downloaded model {version} does not match its signed manifest "
                f"({size} bytes, sha256 {digest.hexdigest()[:16]}…; manifest says "
                f"{expected_size} bytes, {expected_sha256[:16]}…)")
        os.replace(partial, target)
        return target

    def send_erasure(self, notice: ErasureNotice) -> ErasureReceipt:
        """Tell the engine what this station erased; returns what the engine erased."""
        response = self._request("POST", "/sync/erasures", json=notice.model_dump(mode="json"))
        return _parse(ErasureReceipt, response)

    def report_event(self, kind: StationEventKind, *, version: str | None, deployment: int | None,
                     detail: str = "") -> None:
        """Tell the engine about a model installed or refused (audited there)."""
        event = StationEvent(kind=kind, version=version, deployment=deployment,
                             detail=detail[:2000])
        self._request("POST", "/station/events", json=event.model_dump(mode="json"))


_REVIEW_LIST: TypeAdapter[list[ReviewRecord]] = TypeAdapter(list[ReviewRecord])
_Parsed = TypeVar("_Parsed")


def _parse(schema: type[_Parsed] | TypeAdapter[_Parsed], response: requests.Response) -> _Parsed:
    """Validate an engine answer against the protocol; a malformed one is the engine's fault."""
    adapter = schema if isinstance(schema, TypeAdapter) else TypeAdapter(schema)
    try:
        return adapter.validate_json(response.content)
    except ValidationError as error:
        raise EngineUnreachableError(
            "error.sync.protocol", method=response.request.method, url=response.url,
            count=error.error_count(), first=error.errors()[0]["msg"]) from None


def _detail(response: requests.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.text[:500] or response.reason
    detail = body.get("detail") if isinstance(body, dict) else body
    return detail if isinstance(detail, str) else json.dumps(detail)[:500]
