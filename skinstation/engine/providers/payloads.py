"""What a provider sends to ``POST /api/v1/classify``, validated (pydantic) before any work.

The same fields arrive as multipart form fields next to an ``image`` file, or as a JSON
document with the image in ``image_base64``. Unknown fields are refused so a typo cannot
silently drop data, and any field that looks like a person's name is refused outright: the
engine only ever receives the provider's pseudonymous end-user id.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from skinstation.engine.errors import InvalidError, TooLargeError
from skinstation.protocol.fields import WireTime

PSEUDONYM = r"^[A-Za-z0-9._:-]{1,128}$"
PseudonymousId = Annotated[str, Field(pattern=PSEUDONYM)]


class ClassifyOptions(BaseModel):
    """Everything about one classify call except the image."""

    model_config = ConfigDict(extra="forbid", frozen=True, json_schema_extra={"examples": [{
        "end_user_id": "u-7f3a9c", "device_id": "iphone-15-a1b2", "consent": True,
        "language": "en", "access_time": "2025-06-01T09:30:00+09:00"}]})

    end_user_id: PseudonymousId = Field(description=(
        "The provider's own pseudonymous id of its end user (letters, digits, '.', '_', ':', "
        "'-'; never a name, e-mail or phone number)"))
    device_id: PseudonymousId = Field(description="The provider's id of the end user's device "
                                                  "or terminal")
    consent: bool = Field(default=False, description=(
        "The end user agreed that this image may be kept for expert review and re-learning "
        "(needs the key's 'submit-for-review' scope). Without it nothing of the image is kept"))
    language: Literal["en", "ko"] = Field(default="en", description="Language of the texts")
    access_time: WireTime | None = Field(default=None, description=(
        "When the end user accessed the provider's service (ISO 8601 with zone, years "
        "1900-2200; default: when the engine received the call)"))
    capture_time: WireTime | None = Field(default=None, description=(
        "When the image was taken (default: the access time)"))
    body_site: str = Field(default="unspecified", pattern=r"^[a-z][a-z0-9_ -]{0,63}$",
                           description="Where on the body, e.g. 'back', 'left_forearm'")
    quality: bool = Field(default=True, description="Include the image-quality check")
    heatmap: bool = Field(default=False, description=(
        "Include a Grad-CAM heatmap as a data: URL (computed per call, never stored)"))


class ClassifyJson(ClassifyOptions):
    """The JSON form of a classify call."""

    model_config = ConfigDict(extra="forbid", frozen=True, json_schema_extra={"examples": [{
        "image_base64": "/9j/4AAQSkZJRgABAQAAAQABAAD...", "end_user_id": "u-7f3a9c",
        "device_id": "iphone-15-a1b2", "consent": False, "language": "ko"}]})

    image_base64: str = Field(description="The image file (JPEG, PNG, TIFF, BMP or WebP), "
                                          "base64-encoded; a data: URL prefix is allowed")


@dataclass(frozen=True)
class ClassifyRequest:
    """A validated classify call."""

    image: bytes
    options: ClassifyOptions

    @property
    def access_time(self) -> datetime | None:
        """When the end user accessed the provider's service, if given."""
        return self.options.access_time


def _refuse_names(fields: Mapping[str, Any]) -> None:
    named = sorted(key for key in fields if "name" in key.lower())
    if named:
        raise InvalidError(f"end-user names are never accepted (field {', '.join(named)}); "
                           "send only your pseudonymous end_user_id; nothing stored")


def _problems(error: ValidationError) -> str:
    return "; ".join(f"{'.'.join(str(p) for p in e['loc']) or 'body'}: {e['msg']}"
                     for e in error.errors()[:10])


def parse_form(fields: Mapping[str, Any], image: bytes | None,
               max_image_bytes: int) -> ClassifyRequest:
    """Validate a multipart call: form ``fields`` and the ``image`` file's bytes.

    Raises:
        InvalidError: A name field, a bad or unknown field, or no image (422).
        TooLargeError: The image is over ``max_image_bytes`` (413).
    """
    _refuse_names(fields)
    if image is None:
        raise InvalidError("multipart field 'image' (the image file) is missing; nothing stored")
    try:
        options = ClassifyOptions.model_validate(dict(fields))
    except ValidationError as error:
        raise InvalidError(f"invalid classify request: {_problems(error)}; nothing stored"
                           ) from None
    return ClassifyRequest(_checked_size(image, max_image_bytes), options)


def parse_json(document: Any, max_image_bytes: int) -> ClassifyRequest:
    """Validate a JSON call (image in ``image_base64``).

    Raises:
        InvalidError: Not an object, a name field, a bad field, or bad base64 (422).
        TooLargeError: The decoded image is over ``max_image_bytes`` (413).
    """
    if not isinstance(document, dict):
        raise InvalidError("the JSON body must be an object; nothing stored")
    _refuse_names(document)
    try:
        parsed = ClassifyJson.model_validate(document)
    except ValidationError as error:
        raise InvalidError(f"invalid classify request: {_problems(error)}; nothing stored"
                           ) from None
    encoded = parsed.image_base64
    if encoded.startswith("data:") and "," in encoded:
        encoded = encoded.split(",", 1)[1]
    if len(encoded) > (max_image_bytes + 2) // 3 * 4 + 4:
        raise TooLargeError(f"image larger than {max_image_bytes} bytes; nothing stored")
    try:
        image = base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError):
        raise InvalidError("image_base64 is not valid base64; nothing stored") from None
    options = ClassifyOptions.model_validate(parsed.model_dump(exclude={"image_base64"}))
    return ClassifyRequest(_checked_size(image, max_image_bytes), options)


def _checked_size(image: bytes, max_image_bytes: int) -> bytes:
    if len(image) > max_image_bytes:
        raise TooLargeError(f"image larger than {max_image_bytes} bytes; nothing stored")
    if not image:
        raise InvalidError("the image is empty (0 bytes); nothing stored")
    return image
