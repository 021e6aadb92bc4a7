"""API request and response bodies of the models domain (part of the OpenAPI document)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from skinstation.protocol.fields import Line, Note


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid")


class VersionOut(BaseModel):
    """A model version with its metrics and provenance.

    ``claimed_metrics`` come from the model file (unchecked); ``gate_metrics`` were measured by
    the engine on its locked test set when the promotion gate ran (``None``: never gated).
    """

    version: str
    status: str
    file_sha256: str
    parent_version: str | None
    data_fingerprint: str
    claimed_metrics: dict[str, Any] = Field(description="what the model file says (unchecked)")
    gate_metrics: dict[str, Any] | None = Field(
        description="measured by the engine's promotion gate on its locked test set")
    report: dict[str, Any] = Field(description="the gate's report (verdict and figures)")
    created_by: str
    created_at: datetime
    decided_by: str | None
    job_id: int | None
    deployed: bool


class RollbackRequest(_In):
    """Which version to go back to (default: the one deployed before the current one)."""

    to_version: Line | None = Field(default=None, max_length=64)
    reason: Note = Field(default="rollback", max_length=2000)
