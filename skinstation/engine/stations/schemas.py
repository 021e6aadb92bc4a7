"""API request and response bodies of the stations domain (part of the OpenAPI document)."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from skinstation.protocol.fields import Line


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid")


class CodeRequest(_In):
    """Ask for an enrollment code."""

    station_name: Line = Field(min_length=1, max_length=200)


class CodeResponse(BaseModel):
    """A one-time enrollment code (shown once)."""

    code: str
    station_name: str
    expires_at: datetime


class StationOut(BaseModel):
    """An enrolled station."""

    station_id: int
    name: str
    station_ref: str
    enrolled_at: datetime
    revoked_at: datetime | None
    last_seen_at: datetime | None
