"""API request and response bodies of the audit domain (part of the OpenAPI document)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid")


class AuditOut(BaseModel):
    """One audit log row."""

    id: int
    occurred_at: datetime
    actor: str
    action: str
    entity_type: str | None
    entity_id: str | None
    detail: dict[str, Any]
