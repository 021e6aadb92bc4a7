"""API request and response bodies of the review domain (part of the OpenAPI document)."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from skinstation.protocol.fields import Line, Note


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid")


class StationReviewOut(BaseModel):
    """A review a station sent with the capture: a proposal until an engine review confirms it."""

    code: str
    reviewer: str = Field(description="'station:<station name>/<author at the station>'")
    note: str | None
    reviewed_at: datetime


class LesionCaptureOut(BaseModel):
    """One capture of a lesion, in the lesion's history."""

    capture_id: int
    uid: str
    capture_time: datetime
    band: str
    decision: str | None
    referral: bool | None
    final_label: str | None = Field(description="latest engine review, else the original label")
    review_status: Literal["confirmed", "unreviewed"]
    current: bool = Field(description="true for the case being looked at")


class LesionOut(BaseModel):
    """The station's lesion a case shows, with every capture of it from that station."""

    uid: str
    body_site: str | None
    view: str | None
    side: str | None
    x: float | None
    y: float | None
    captures: list[LesionCaptureOut] = Field(description="oldest first, this case included")


class QueueItemOut(BaseModel):
    """One case waiting for review."""

    capture_id: int
    uid: str
    station: str
    pseudonym: str
    band: str
    body_site: str
    capture_time: datetime
    decision: str | None
    referral: bool | None
    model_version: str | None
    group_probabilities: dict[str, float]
    original_label: str | None
    urgent: bool
    source: str = Field(default="station", description="'station' or 'provider'")
    station_review: StationReviewOut | None = Field(
        default=None, description="the station's latest review, awaiting confirmation here")
    lesion: LesionOut | None = Field(
        default=None, description="the lesion it shows and that lesion's history, if any")


class ReviewRequest(_In):
    """A dermatologist's verdict on a case."""

    action: Literal["confirm", "correct"]
    code: Line | None = Field(default=None, max_length=32, description="diagnosis for 'correct'")
    note: Note | None = Field(default=None, max_length=2000)
