"""Station enrollment and credentials.

An administrator creates a one-time enrollment code for a named station. The station sends
the code once and receives its bearer token and the engine's public signing key (to pin). The
engine stores only sha256 digests of codes and tokens. A revoked station's token is refused
with 401 on every request from then on.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import select, update

from skinstation.core.timeutil import utc_now
from skinstation.core.validation import require_text
from skinstation.engine.audit import service as audit
from skinstation.engine.database import EngineDatabase
from skinstation.engine.errors import InvalidError, NotFoundError, UnauthorizedError
from skinstation.engine.models.models import SigningKey
from skinstation.engine.stations.models import EnrollmentCode, Station
from skinstation.engine.stations.schemas import CodeResponse, StationOut
from skinstation.engine.tokens import (
    STATION_TOKEN_PREFIX,
    digest,
    new_enrollment_code,
    new_token,
    normalise_code,
)
from skinstation.protocol.messages import EnrollResponse

LAST_SEEN_RESOLUTION = timedelta(minutes=1)


@dataclass(frozen=True)
class StationPrincipal:
    """An authenticated station."""

    station_id: int
    name: str
    station_ref: str

    @property
    def actor(self) -> str:
        """Audit actor string."""
        return f"station:{self.station_id}"


def _text(value: str, field: str, max_length: int) -> str:
    """``value`` stripped, or :class:`InvalidError` (422) if empty, too long or with controls."""
    try:
        return require_text(value, field, max_length)
    except ValueError as error:
        raise InvalidError(f"{error}; nothing stored") from None


def create_enrollment_code(db: EngineDatabase, station_name: str, *, actor: str) -> CodeResponse:
    """Issue a one-time code for enrolling the station called ``station_name``.

    Raises:
        InvalidError: The name is empty, longer than 200 characters or holds control
            characters.
    """
    name = _text(station_name, "station name", 200)
    code = new_enrollment_code()
    now = utc_now()
    expires = now + timedelta(hours=db.settings.engine.enrollment_code_hours)
    with db.transaction() as session:
        row = EnrollmentCode(code_hash=digest(normalise_code(code)), station_name=name,
                             created_by=actor, created_at=now, expires_at=expires)
        session.add(row)
        session.flush()
        audit.record(session, actor, "enrollment_code.created", "enrollment_code", row.id,
                     {"station_name": name, "expires_at": expires.isoformat()})
    return CodeResponse(code=code, station_name=name, expires_at=expires)


def enroll(db: EngineDatabase, code: str, station_ref: str) -> EnrollResponse:
    """Exchange a one-time code for a station credential and the engine's public key.

    Args:
        db: The engine database.
        code: The enrollment code, as typed (case and dashes do not matter).
        station_ref: The station's own identifier (its ``station_id`` setting).

    Raises:
        UnauthorizedError: Unknown, used or expired code (one message for all three).
        InvalidError: The engine has no signing key yet (run ``skinstation engine init``), or
            ``station_ref`` is empty, too long or holds control characters.
    """
    ref = _text(station_ref, "station_ref", 64)
    now = utc_now()
    with db.transaction() as session:
        key = session.scalar(select(SigningKey).order_by(SigningKey.id.desc()).limit(1))
        if key is None:
            raise InvalidError("the engine has no signing key; run 'skinstation engine init'")
        # Claim the code with one conditional UPDATE so two stations racing for it cannot both win.
        claimed = session.execute(
            update(EnrollmentCode)
            .where(
                EnrollmentCode.code_hash == digest(normalise_code(code)),
                EnrollmentCode.used_at.is_(None),
                EnrollmentCode.expires_at > now,
            )
            .values(used_at=now)
            .returning(EnrollmentCode.id, EnrollmentCode.station_name)
        ).first()
        if claimed is None:
            raise UnauthorizedError("enrollment code is unknown, already used or expired")
        code_id, name = claimed
        token = new_token(STATION_TOKEN_PREFIX)
        station = Station(name=name, station_ref=ref, token_hash=digest(token), enrolled_at=now)
        session.add(station)
        session.flush()
        session.execute(
            update(EnrollmentCode).where(EnrollmentCode.id == code_id).values(station_id=station.id)
        )
        audit.record(session, f"station:{station.id}", "station.enrolled", "station", station.id,
                     {"name": name, "station_ref": ref, "enrollment_code_id": code_id})
        return EnrollResponse(station_id=station.id, station_name=name, token=token,
                              public_key=key.public_key, key_id=key.key_id)


def authenticate(db: EngineDatabase, token: str) -> StationPrincipal:
    """Return the station a bearer token belongs to.

    Raises:
        UnauthorizedError: Unknown or revoked token. Nothing is written for a refused token.
    """
    if not token.startswith(STATION_TOKEN_PREFIX):
        raise UnauthorizedError("invalid station credential")
    now = utc_now()
    with db.transaction() as session:
        station = session.scalar(select(Station).where(Station.token_hash == digest(token)))
        if station is None:
            raise UnauthorizedError("invalid station credential")
        if station.revoked_at is not None:
            raise UnauthorizedError(
                "station credential was revoked; ask the administrator for a new enrollment code"
            )
        if station.last_seen_at is None or now - station.last_seen_at > LAST_SEEN_RESOLUTION:
            station.last_seen_at = now
        return StationPrincipal(station.id, station.name, station.station_ref)


def revoke(db: EngineDatabase, station_id: int, *, actor: str) -> StationOut:
    """Revoke a station's credential (its next request gets 401).

    Raises:
        NotFoundError: No such station.
    """
    with db.transaction() as session:
        station = session.get(Station, station_id)
        if station is None:
            raise NotFoundError(f"station {station_id} does not exist")
        if station.revoked_at is None:
            station.revoked_at, station.revoked_by = utc_now(), actor
            audit.record(session, actor, "station.revoked", "station", station.id,
                         {"name": station.name})
        return _info(station)


def list_stations(db: EngineDatabase) -> list[StationOut]:
    """Every enrolled station, revoked ones included."""
    with db.transaction() as session:
        return [_info(s) for s in session.scalars(select(Station).order_by(Station.id))]


def _info(station: Station) -> StationOut:
    return StationOut(station_id=station.id, name=station.name, station_ref=station.station_ref,
                      enrolled_at=station.enrolled_at, revoked_at=station.revoked_at,
                      last_seen_at=station.last_seen_at)
