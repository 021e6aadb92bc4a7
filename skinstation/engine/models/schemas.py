"""API request and response bodies of the models domain (part of the OpenAPI document)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid")


class VersionOut(BaseModel):
    """A model version with its metrics and provenance."""

    version: str
    status: str
    file_sha256: str
    parent_version: str | None
    data_fingerprint: str
    metrics: dict[str, Any]
    report: dict[str, Any]
    created_by: str
    created_at: datetime
    decided_by: str | None
    job_id: int | None
    deployed: bool


class RollbackRequest(_In):
    """Which version to go back to (default: the one deployed before the current one)."""

    to_version: str | None = Field(default=None, max_length=64)
    reason: str = Field(default="rollback", max_length=2000)
