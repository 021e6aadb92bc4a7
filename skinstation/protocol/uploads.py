"""The capture document a station uploads with each image, and the engine's receipt.

The station builds it from these classes (:meth:`skinstation.storage.SyncRecords.upload_of`)
and the engine validates the received JSON with the same classes. Every time must carry its
timezone and is written as ``datetime.isoformat()`` (the wire format since version 1);
unknown fields are refused so a typo cannot silently drop data.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, PlainSerializer

Probability = Annotated[float, Field(ge=0.0, le=1.0, allow_inf_nan=False)]
Code = Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]{0,31}$")]
Text64 = Annotated[str, Field(min_length=1, max_length=64)]


def _isoformat(value: datetime) -> str:
    return value.isoformat()


WireTime = Annotated[AwareDatetime, PlainSerializer(_isoformat, return_type=str, when_used="json")]
"""An aware datetime, sent as ``isoformat()`` (``+00:00``, microseconds when present)."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class CapturePart(_Strict):
    """The capture row."""

    uid: str = Field(pattern=r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
    band: str = Field(min_length=1, max_length=32)
    body_site: Text64
    device_id: str = Field(min_length=1, max_length=128)
    operator: Text64
    access_time: WireTime
    capture_time: WireTime
    saved_at: WireTime
    image_sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    image_size: int = Field(gt=0)
    image_format: Literal["png", "jpg", "tif", "bmp", "webp"]
    width: int = Field(gt=0)
    height: int = Field(gt=0)
    multispectral_group_id: str | None = Field(default=None, min_length=1, max_length=36)
    multispectral_index: int | None = Field(default=None, ge=0)


class SessionPart(_Strict):
    """The station visit (session) the capture belongs to."""

    ref: Text64
    operator: Text64
    opened_at: WireTime
    closed_at: WireTime | None = None


class PatientPart(_Strict):
    """The patient: a pseudonym, and a name only if the station may send names."""

    pseudonym: Text64
    name: str | None = Field(default=None, min_length=1, max_length=200)


class PredictionPart(_Strict):
    """One model output recorded at the station (no probabilities when not assessable)."""

    model_version: Text64
    class_probabilities: dict[str, Probability] = Field(max_length=64)
    group_probabilities: dict[str, Probability] = Field(max_length=16)
    decision: Code
    referral: bool | None = None
    created_at: WireTime


class LabelPart(_Strict):
    """A label given at the station: the operator's original, or a station-side review."""

    kind: Literal["operator", "review"]
    code: Code
    note: str | None = Field(default=None, max_length=2000)
    author: Text64
    created_at: WireTime


class CaptureMetadata(_Strict):
    """Everything about one capture except its pixels."""

    capture: CapturePart
    session: SessionPart
    patient: PatientPart
    predictions: list[PredictionPart] = Field(default_factory=list, max_length=50)
    labels: list[LabelPart] = Field(default_factory=list, max_length=50)

    def wire(self) -> dict[str, Any]:
        """The JSON-ready document, exactly as it is sent."""
        return self.model_dump(mode="json")


class CaptureReceipt(BaseModel):
    """The engine's confirmation that it holds a capture."""

    capture_id: int
    uid: str
    image_sha256: str
    duplicate: bool = Field(description="true if the engine already had it (a retry)")
