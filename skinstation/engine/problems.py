"""The bodies of the engine's error answers (one shape for all; part of the OpenAPI document).

Every refusal is JSON ``{"detail": "..."}`` (:class:`ErrorOut`): the engine's own errors
(:mod:`skinstation.engine.errors`), FastAPI's HTTP errors (a body that cannot be parsed: 400)
and the body-size limit (413). Only a request that fails FastAPI's own parameter or body
validation gets a list of field problems instead (:class:`InvalidOut`, 422); a 422 from a
service check (an image that does not decode, a bad date range) is a sentence, as above.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class ErrorOut(BaseModel):
    """Every error: a sentence saying what went wrong and what to do."""

    detail: str = Field(examples=["invalid API key"])


class FieldProblemOut(BaseModel):
    """One field that failed validation (FastAPI's and pydantic's error entry)."""

    model_config = ConfigDict(extra="allow")

    loc: list[str | int] = Field(description="where: 'body', 'query', 'path', then the field")
    msg: str
    type: str = Field(description="pydantic's error type, e.g. 'missing', 'string_too_long'")
    input: Any = None
    ctx: dict[str, Any] | None = None


class InvalidOut(BaseModel):
    """A request the engine refused as invalid (422): a sentence, or the fields that failed."""

    model_config = ConfigDict(json_schema_extra={"examples": [
        {"detail": [{"loc": ["body", "username"], "msg": "Field required",
                     "type": "missing", "input": {}}]},
        {"detail": "usage range must run forwards and span at most 366 days"},
    ]})

    detail: str | list[FieldProblemOut]
