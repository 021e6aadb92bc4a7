"""The capture document a station uploads with each image, and the engine's receipt.

The station builds it from these classes (:meth:`skinstation.storage.SyncRecords.upload_of`)
and the engine validates the received JSON with the same classes. Every time must carry its
timezone and is written as ``datetime.isoformat()`` (the wire format since version 1);
unknown fields are refused so a typo cannot silently drop data. Text holds no control
characters (notes may hold line breaks), times lie within the plausible years and integers fit
the database (:mod:`skinstation.protocol.fields`).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from skinstation.protocol.fields import DbInt, Line, Note
from skinstation.protocol.fields import WireTime as WireTime

Probability = Annotated[float, Field(ge=0.0, le=1.0, allow_inf_nan=False)]
Code = Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]{0,31}$")]
Text64 = Annotated[Line, Field(min_length=1, max_length=64)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class CapturePart(_Strict):
    """The capture row."""

    uid: str = Field(pattern=r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
    band: Line = Field(min_length=1, max_length=32)
    body_site: Text64
    device_id: Line = Field(min_length=1, max_length=128)
    operator: Text64
    access_time: WireTime
    capture_time: WireTime
    saved_at: WireTime
    image_sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    image_size: DbInt = Field(gt=0)
    image_format: Literal["png", "jpg", "tif", "bmp", "webp"]
    width: DbInt = Field(gt=0)
    height: DbInt = Field(gt=0)
    multispectral_group_id: Line | None = Field(default=None, min_length=1, max_length=36)
    multispectral_index: DbInt | None = None


class SessionPart(_Strict):
    """The station visit (session) the capture belongs to."""

    ref: Text64
    operator: Text64
    opened_at: WireTime
    closed_at: WireTime | None = None


class PatientPart(_Strict):
    """The patient: a pseudonym, and a name only if the station may send names."""

    pseudonym: Text64
    name: Line | None = Field(default=None, min_length=1, max_length=200)


class PredictionPart(_Strict):
    """One model output recorded at the station (no probabilities when not assessable)."""

    model_version: Text64
    class_probabilities: dict[Text64, Probability] = Field(max_length=64)
    group_probabilities: dict[Text64, Probability] = Field(max_length=16)
    decision: Code
    referral: bool | None = None
    created_at: WireTime


class LabelPart(_Strict):
    """A label given at the station: the operator's original, or a station-side review."""

    kind: Literal["operator", "review"]
    code: Code
    note: Note | None = Field(default=None, max_length=2000)
    author: Text64
    created_at: WireTime


class LesionPart(_Strict):
    """The lesion a capture shows (optional, since station migration 0010).

    ``uid`` is the lesion's identity across the station's captures; the placement is the
    station's body map: site code, front/back view, side and a point in 0..1. Labels and
    notes of the lesion stay at the station.
    """

    uid: str = Field(pattern=r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
    body_site: Text64
    view: Literal["front", "back"]
    side: Literal["left", "right", "midline"]
    x: Probability
    y: Probability


class CaptureMetadata(_Strict):
    """Everything about one capture except its pixels.

    ``lesion`` is left out of the JSON when the capture has none, so such a document is
    byte-identical to what release 1 sent.
    """

    capture: CapturePart
    session: SessionPart
    patient: PatientPart
    predictions: list[PredictionPart] = Field(default_factory=list, max_length=50)
    labels: list[LabelPart] = Field(default_factory=list, max_length=50)
    lesion: LesionPart | None = None

    def wire(self) -> dict[str, Any]:
        """The JSON-ready document, exactly as it is sent (no ``lesion`` key without one)."""
        return self.model_dump(mode="json", exclude={"lesion"} if self.lesion is None else None)


class CaptureReceipt(BaseModel):
    """The engine's confirmation that it holds a capture."""

    capture_id: int
    uid: str
    image_sha256: str
    duplicate: bool = Field(description="true if the engine already had it (a retry)")
