"""API request bodies of the patients domain (the station's notice: :mod:`protocol.erasures`)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

from skinstation.protocol.erasures import ErasureReason


class EraseRequest(BaseModel):
    """An administrator's erasure of a patient: only the reason, from a fixed set."""

    model_config = ConfigDict(extra="forbid")

    reason: ErasureReason
