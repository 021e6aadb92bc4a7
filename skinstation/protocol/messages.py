"""Enrollment, the reviews a station pulls, and the events a station reports."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from skinstation.protocol.fields import DbInt, Line, Note

StationEventKind = Literal["model_installed", "model_refused"]


class _Request(BaseModel):
    model_config = ConfigDict(extra="forbid")


class EnrollRequest(_Request):
    """A station's one-time enrollment."""

    code: Line = Field(min_length=4, max_length=64, description="one-time enrollment code")
    station_ref: Line = Field(min_length=1, max_length=64, description="the station's own id")


class EnrollResponse(BaseModel):
    """The station's credential (shown once) and the engine key to pin."""

    station_id: int
    station_name: str
    token: str
    public_key: str = Field(description="base64 raw Ed25519 public key that signs manifests")
    key_id: str


class ReviewRecord(BaseModel):
    """A review (engine or station origin)."""

    review_id: int
    capture_id: int
    capture_uid: str
    origin: str
    action: str
    code: str
    note: str | None
    reviewer: str
    reviewer_name: str
    reviewed_at: datetime
    supersedes_id: int | None


class StationEvent(_Request):
    """Something a station reports (kept in the engine's audit log)."""

    kind: StationEventKind
    version: Line | None = Field(default=None, max_length=64)
    deployment: DbInt | None = None
    detail: Note = Field(default="", max_length=2000)


class StationIdentity(BaseModel):
    """Who the engine thinks the caller is."""

    station_id: int
    name: str
    station_ref: str
