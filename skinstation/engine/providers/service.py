"""Third-party service providers: accounts, scoped API keys (hashed, revocable, rotatable), usage.

An administrator creates a provider with its quotas, then issues API keys. A key looks like
``spk_<key_id>_<secret>``: ``key_id`` (12 hex characters, public, shown in listings and logs)
finds the row with one indexed lookup; the secret carries 256 random bits, so the stored
sha256 of the whole key is a safe verifier (as for station tokens), compared in constant time.
The key itself is shown once and never stored. Rotating a key issues a new one with the same
scopes and ends the old one, at once or after a grace period so a provider can switch without
downtime. Every change is in the audit log; a refused key writes nothing.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from skinstation.core.timeutil import utc_now
from skinstation.engine.audit import service as audit
from skinstation.engine.database import EngineDatabase
from skinstation.engine.errors import (
    ConflictError,
    ForbiddenError,
    InvalidError,
    NotFoundError,
    UnauthorizedError,
)
from skinstation.engine.providers.models import (
    KeyScope,
    Provider,
    ProviderKey,
    ProviderUsage,
)
from skinstation.engine.providers.schemas import IssuedKeyOut, KeyOut, ProviderOut, UsageOut

KEY_PREFIX = "spk_"
KEY_FORMAT = re.compile(r"spk_([0-9a-f]{12})_([A-Za-z0-9_-]{43})")
DEFAULT_PER_MINUTE = 60
DEFAULT_PER_DAY = 10_000
MAX_USAGE_DAYS = 366
_DUMMY_HASH = hashlib.sha256(b"no such key").hexdigest()


@dataclass(frozen=True)
class ProviderPrincipal:
    """A provider authenticated by one of its keys."""

    provider_id: int
    provider_name: str
    key_id: str
    scopes: frozenset[str]
    requests_per_minute: int
    requests_per_day: int

    @property
    def actor(self) -> str:
        """Audit actor string."""
        return f"provider:{self.provider_id}/{self.key_id}"

    def require(self, scope: KeyScope) -> ProviderPrincipal:
        """Return self if the key has ``scope``.

        Raises:
            ForbiddenError: Otherwise.
        """
        if scope.value not in self.scopes:
            raise ForbiddenError(f"API key {self.key_id} lacks the {scope.value!r} scope "
                                 f"(it has: {', '.join(sorted(self.scopes))})")
        return self


def key_digest(key: str) -> str:
    """The stored form of an API key: hex sha256."""
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def parse_scopes(scopes: list[str] | tuple[str, ...] | str) -> list[str]:
    """Validate scope names; returns them sorted without duplicates.

    Raises:
        InvalidError: Empty, or an unknown scope.
    """
    names = scopes.replace(",", " ").split() if isinstance(scopes, str) else list(scopes)
    known = {scope.value for scope in KeyScope}
    unknown = sorted(set(names) - known)
    if unknown or not names:
        raise InvalidError(f"scopes must be one or more of {', '.join(sorted(known))}; "
                           f"got {', '.join(unknown) or 'none'}")
    return sorted(set(names))


def _quota(value: int, name: str, ceiling: int) -> int:
    if not 1 <= int(value) <= ceiling:
        raise InvalidError(f"{name} must be between 1 and {ceiling}, got {value}")
    return int(value)


def create_provider(db: EngineDatabase, name: str, *, actor: str, contact: str = "",
                    requests_per_minute: int = DEFAULT_PER_MINUTE,
                    requests_per_day: int = DEFAULT_PER_DAY) -> ProviderOut:
    """Create a provider account (an organisation, never a person's record).

    Raises:
        InvalidError: Empty name or quotas out of range.
        ConflictError: The name is taken.
    """
    name = name.strip()
    if not 1 <= len(name) <= 200 or name.isdigit():
        raise InvalidError("provider name must be 1-200 characters and not only digits")
    per_minute = _quota(requests_per_minute, "requests_per_minute", 1_000_000)
    per_day = _quota(requests_per_day, "requests_per_day", 100_000_000)
    with db.transaction() as session:
        if session.scalar(select(Provider.id).where(Provider.name == name)) is not None:
            raise ConflictError(f"provider {name!r} already exists")
        row = Provider(name=name, contact=contact.strip()[:200], requests_per_minute=per_minute,
                       requests_per_day=per_day, disabled=False, created_by=actor,
                       created_at=utc_now())
        session.add(row)
        session.flush()
        audit.record(session, actor, "provider.created", "provider", row.id,
                     {"name": name, "requests_per_minute": per_minute,
                      "requests_per_day": per_day})
        return _provider_info(row)


def update_provider(db: EngineDatabase, provider: int | str, *, actor: str,
                    requests_per_minute: int | None = None, requests_per_day: int | None = None,
                    disabled: bool | None = None) -> ProviderOut:
    """Change a provider's quotas, or disable (every key refused with 403) / enable it."""
    with db.transaction() as session:
        row = _provider(session, provider)
        changes: dict[str, object] = {}
        if requests_per_minute is not None:
            row.requests_per_minute = changes["requests_per_minute"] = _quota(
                requests_per_minute, "requests_per_minute", 1_000_000)
        if requests_per_day is not None:
            row.requests_per_day = changes["requests_per_day"] = _quota(
                requests_per_day, "requests_per_day", 100_000_000)
        if disabled is not None:
            row.disabled = changes["disabled"] = bool(disabled)
        if changes:
            audit.record(session, actor, "provider.updated", "provider", row.id, changes)
        return _provider_info(row)


def list_providers(db: EngineDatabase) -> list[ProviderOut]:
    """Every provider, oldest first."""
    with db.transaction() as session:
        return [_provider_info(r) for r in session.scalars(select(Provider).order_by(Provider.id))]


def get_provider(db: EngineDatabase, provider: int | str) -> ProviderOut:
    """One provider by id or name.

    Raises:
        NotFoundError: No such provider.
    """
    with db.transaction() as session:
        return _provider_info(_provider(session, provider))


def create_key(db: EngineDatabase, provider: int | str, *, actor: str,
               scopes: list[str] | tuple[str, ...] | str = (KeyScope.CLASSIFY.value,),
               label: str = "") -> IssuedKeyOut:
    """Issue an API key for a provider (the key is returned once, only its hash is kept)."""
    names = parse_scopes(scopes)
    with db.transaction() as session:
        row = _provider(session, provider)
        return _issue(session, row.id, names, label, actor, rotated_from=None)


def list_keys(db: EngineDatabase, provider: int | str) -> list[KeyOut]:
    """A provider's keys, oldest first (revoked and expired ones included)."""
    with db.transaction() as session:
        row = _provider(session, provider)
        keys = session.scalars(select(ProviderKey).where(ProviderKey.provider_id == row.id)
                               .order_by(ProviderKey.id))
        return [_key_info(session, key) for key in keys]


def revoke_key(db: EngineDatabase, key_id: str, *, actor: str) -> KeyOut:
    """Revoke a key: its next request gets 401 (revoking twice changes nothing).

    Raises:
        NotFoundError: No such key.
    """
    now = utc_now()
    with db.transaction() as session:
        key = _key(session, key_id)
        if key.revoked_at is None:
            key.revoked_at, key.revoked_by = now, actor
            audit.record(session, actor, "provider_key.revoked", "provider_key", key.key_id,
                         {"provider_id": key.provider_id})
        return _key_info(session, key)


def rotate_key(db: EngineDatabase, key_id: str, *, actor: str,
               grace_seconds: float = 0.0) -> IssuedKeyOut:
    """Replace a key by a new one with the same scopes and label.

    Args:
        db: The engine database.
        key_id: The key to replace.
        actor: Who rotates (audit).
        grace_seconds: The old key keeps working this long (0: revoked at once).

    Raises:
        NotFoundError: No such key.
        InvalidError: The key is already revoked or expired, or a negative grace.
    """
    if not 0 <= grace_seconds <= 30 * 86400:
        raise InvalidError(f"grace_seconds must be between 0 and {30 * 86400}")
    now = utc_now()
    with db.transaction() as session:
        old = _key(session, key_id)
        if not _active(old, now):
            raise InvalidError(f"API key {key_id} is revoked or expired; create a new key")
        if grace_seconds:
            old.expires_at = now + timedelta(seconds=grace_seconds)
        else:
            old.revoked_at, old.revoked_by = now, actor
        issued = _issue(session, old.provider_id, old.scopes.split(), old.label, actor,
                        rotated_from=old)
        ends_at = old.expires_at or old.revoked_at or now
        audit.record(session, actor, "provider_key.rotated", "provider_key", old.key_id,
                     {"provider_id": old.provider_id, "new_key_id": issued.key_id,
                      "old_key_ends_at": ends_at.isoformat()})
        return issued


def authenticate_key(db: EngineDatabase, key: str) -> ProviderPrincipal:
    """Return the provider an API key belongs to; nothing is written.

    Raises:
        UnauthorizedError: Malformed, unknown, wrong, revoked or expired key.
        ForbiddenError: The provider is disabled.
    """
    match = KEY_FORMAT.fullmatch(key.strip())
    if match is None:
        raise UnauthorizedError("invalid API key")
    now = utc_now()
    with db.transaction() as session:
        found = session.execute(
            select(ProviderKey, Provider).join(Provider, Provider.id == ProviderKey.provider_id)
            .where(ProviderKey.key_id == match.group(1))).first()
        stored = found[0].key_hash if found else _DUMMY_HASH
        if not hmac.compare_digest(stored, key_digest(key.strip())) or found is None:
            raise UnauthorizedError("invalid API key")
        row, provider = found
        if row.revoked_at is not None:
            raise UnauthorizedError(f"API key {row.key_id} was revoked; ask the engine "
                                    "administrator for a new key")
        if row.expires_at is not None and row.expires_at <= now:
            raise UnauthorizedError(f"API key {row.key_id} expired after rotation; use the "
                                    "key that replaced it")
        if provider.disabled:
            raise ForbiddenError(f"provider {provider.name!r} is disabled on this engine")
        return ProviderPrincipal(provider.id, provider.name, row.key_id,
                                 frozenset(row.scopes.split()), provider.requests_per_minute,
                                 provider.requests_per_day)


def usage(db: EngineDatabase, provider: int | str, start: date | None = None,
          end: date | None = None) -> list[UsageOut]:
    """A provider's usage per UTC day from ``start`` to ``end`` (default: the last 30 days).

    Days without calls are left out.

    Raises:
        InvalidError: ``end`` before ``start`` or a range over a year.
    """
    end = end or utc_now().date()
    start = start or end - timedelta(days=29)
    if end < start or (end - start).days >= MAX_USAGE_DAYS:
        raise InvalidError(f"usage range must run forwards and span at most {MAX_USAGE_DAYS} "
                           "days")
    with db.transaction() as session:
        row = _provider(session, provider)
        rows = session.scalars(select(ProviderUsage).where(
            ProviderUsage.provider_id == row.id, ProviderUsage.day >= start,
            ProviderUsage.day <= end).order_by(ProviderUsage.day))
        return [UsageOut(day=r.day, requests=r.requests, classified=r.classified,
                         not_assessable=r.not_assessable, submitted=r.submitted,
                         rejected=r.rejected, failed=r.failed, throttled=r.throttled,
                         busy=r.busy) for r in rows]


def _issue(session: Session, provider_id: int, scopes: list[str], label: str, actor: str,
           *, rotated_from: ProviderKey | None) -> IssuedKeyOut:
    key_id = secrets.token_hex(6)
    while session.scalar(select(ProviderKey.id).where(ProviderKey.key_id == key_id)):
        key_id = secrets.token_hex(6)  # pragma: no cover - 48 random bits rarely collide
    key = f"{KEY_PREFIX}{key_id}_{secrets.token_urlsafe(32)}"
    row = ProviderKey(provider_id=provider_id, key_id=key_id, key_hash=key_digest(key),
                      scopes=" ".join(scopes), label=label.strip()[:200], created_by=actor,
                      created_at=utc_now(),
                      rotated_from_id=None if rotated_from is None else rotated_from.id)
    session.add(row)
    session.flush()
    audit.record(session, actor, "provider_key.created", "provider_key", key_id,
                 {"provider_id": provider_id, "scopes": scopes,
                  "rotated_from": None if rotated_from is None else rotated_from.key_id})
    return IssuedKeyOut(key=key, **_key_fields(session, row))


def _active(key: ProviderKey, now: datetime) -> bool:
    return key.revoked_at is None and (key.expires_at is None or key.expires_at > now)


def _provider(session: Session, provider: int | str) -> Provider:
    if isinstance(provider, int) or str(provider).isdigit():
        row = session.get(Provider, int(provider))
    else:
        row = session.scalar(select(Provider).where(Provider.name == provider))
    if row is None:
        raise NotFoundError(f"provider {provider} does not exist")
    return row


def _key(session: Session, key_id: str) -> ProviderKey:
    row = session.scalar(select(ProviderKey).where(ProviderKey.key_id == key_id))
    if row is None:
        raise NotFoundError(f"API key {key_id} does not exist")
    return row


def _provider_info(row: Provider) -> ProviderOut:
    return ProviderOut(provider_id=row.id, name=row.name, contact=row.contact,
                       requests_per_minute=row.requests_per_minute,
                       requests_per_day=row.requests_per_day, disabled=row.disabled,
                       created_by=row.created_by, created_at=row.created_at)


def _key_info(session: Session, row: ProviderKey) -> KeyOut:
    return KeyOut(**_key_fields(session, row))


def _key_fields(session: Session, row: ProviderKey) -> dict[str, Any]:
    """A key's listing fields (:class:`KeyOut`; never the key or its hash)."""
    previous = (None if row.rotated_from_id is None
                else session.scalar(select(ProviderKey.key_id)
                                    .where(ProviderKey.id == row.rotated_from_id)))
    return {"key_id": row.key_id, "provider_id": row.provider_id, "scopes": row.scopes.split(),
            "label": row.label, "created_by": row.created_by, "created_at": row.created_at,
            "expires_at": row.expires_at, "revoked_at": row.revoked_at,
            "last_used_at": row.last_used_at, "rotated_from": previous,
            "active": _active(row, utc_now())}
