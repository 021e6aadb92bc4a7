"""API request and response bodies of the accounts domain (part of the OpenAPI document)."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from skinstation.protocol.fields import Line


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid")


class LoginRequest(_In):
    """Username and password of an engine account."""

    username: Line = Field(min_length=1, max_length=64)
    password: str = Field(min_length=1, max_length=256)


class LoginResponse(BaseModel):
    """A bearer token for the account's API calls."""

    token: str
    expires_at: datetime
    username: str
    role: str


class AccountIn(_In):
    """A new engine account."""

    username: Line = Field(min_length=2, max_length=64)
    password: str = Field(min_length=1, max_length=256)
    role: Literal["admin", "dermatologist"]
    display_name: Line = Field(default="", max_length=200)


class AccountOut(BaseModel):
    """An engine account (never its password hash)."""

    account_id: int
    username: str
    display_name: str
    role: str
