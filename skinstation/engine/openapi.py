"""The engine's OpenAPI document: FastAPI's, with the true body of every error answer.

Routes document which statuses they answer (``responses=``, e.g. ``ADMIN_ERRORS`` and a 404);
:func:`document_errors` then gives each error status the body the engine really sends
(:mod:`skinstation.engine.problems`): :class:`ErrorOut` for every status from 400 up, and
:class:`InvalidOut` for 422 (FastAPI would claim its ``HTTPValidationError`` list there, but a
service check answers 422 with a sentence). Every operation that takes a body also documents
400 (the body cannot be parsed) and 413 (over the size limit), which any such route answers.
The bounded schemathesis pass (``tests/test_schemathesis.py``) holds the app to this document.
"""

from __future__ import annotations

import json
from typing import Any

from fastapi import FastAPI
from pydantic.json_schema import models_json_schema

from skinstation.engine.problems import ErrorOut, InvalidOut

REF = "#/components/schemas/{model}"
BODY_ERRORS = {
    "400": "the body could not be parsed (not UTF-8 JSON, or broken multipart form data)",
    "413": "the body is larger than this route accepts; nothing stored",
}
"""What every operation with a request body may answer besides its own statuses."""
_FASTAPI_422 = ("HTTPValidationError", "ValidationError")


def _body(model: str) -> dict[str, Any]:
    return {"application/json": {"schema": {"$ref": REF.format(model=model)}}}


def document_errors(document: dict[str, Any]) -> dict[str, Any]:
    """Give every error answer of an OpenAPI document its true body (in place; returned).

    Args:
        document: FastAPI's OpenAPI document of the engine app.

    Returns:
        The same document.
    """
    for item in document.get("paths", {}).values():
        for operation in item.values():
            if not isinstance(operation, dict) or "responses" not in operation:
                continue
            responses: dict[str, Any] = operation["responses"]
            if "requestBody" in operation:
                for status, description in BODY_ERRORS.items():
                    responses.setdefault(status, {"description": description})
            for status, response in responses.items():
                if not status.isdigit() or int(status) < 400:
                    continue
                if status == "422":
                    response["content"] = _body(InvalidOut.__name__)
                elif not response.get("content"):
                    response["content"] = _body(ErrorOut.__name__)
            operation["responses"] = dict(sorted(responses.items()))
    _, definitions = models_json_schema(
        [(ErrorOut, "serialization"), (InvalidOut, "serialization")], ref_template=REF)
    schemas = document.setdefault("components", {}).setdefault("schemas", {})
    schemas.update(definitions.get("$defs", {}))
    text = json.dumps(document.get("paths", {}))
    for name in _FASTAPI_422:
        if REF.format(model=name) not in text and name in schemas:
            del schemas[name]
    return document


def install(app: FastAPI) -> None:
    """Make ``app`` serve :func:`document_errors`' version of its OpenAPI document."""
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = document_errors(generate())
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
