"""Request and response bodies of the provider API (with the examples OpenAPI shows)."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from skinstation.engine.problems import ErrorOut as ErrorOut
from skinstation.engine.providers.payloads import ClassifyJson, ClassifyOptions
from skinstation.protocol.fields import Line

Scope = Literal["classify", "submit-for-review"]


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid")


class QualityCheckOut(BaseModel):
    """One image-quality check."""

    name: str
    value: float
    threshold: float
    passed: bool
    reason: str


class QualityOut(BaseModel):
    """The station's image-quality checks (focus, exposure, glare, framing)."""

    passed: bool
    checks: list[QualityCheckOut]


class ClassifyOut(BaseModel):
    """The classification of one image. Triage support, not a diagnosis."""

    model_config = ConfigDict(json_schema_extra={"examples": [{
        "request_id": "3f1c8a52-6a0e-4f55-9d6b-0c2f7f3b9e11", "model_version": "ham-2025.06",
        "decision": "skin_cancer", "decision_text": "Suspected skin cancer", "assessable": True,
        "not_assessable_reason": None,
        "class_probabilities": {"akiec": 0.04, "bcc": 0.09, "bkl": 0.05, "df": 0.01,
                                "mel": 0.52, "nv": 0.28, "vasc": 0.01},
        "group_probabilities": {"skin_cancer": 0.61, "other_disease": 0.09, "benign": 0.30},
        "top_class": "mel", "referral": True, "referral_threshold": 0.23,
        "referral_text": "Safety referral: possible skin cancer",
        "guidance": "See a dermatologist promptly; a biopsy may be needed.",
        "notice": "This result supports triage only. It is not a diagnosis: a clinician must "
                  "assess the patient.", "language": "en",
        "quality": {"passed": True, "checks": [{"name": "focus", "value": 12.3,
                                                "threshold": 4.0, "passed": True,
                                                "reason": "sharpness 12.3, not below 4.0"}]},
        "heatmap_url": None, "consent": True, "stored_for_review": True,
        "submission_id": "3f1c8a52-6a0e-4f55-9d6b-0c2f7f3b9e11", "end_user_id": "u-7f3a9c",
        "device_id": "iphone-15-a1b2", "access_time": "2025-06-01T00:30:00Z",
        "received_at": "2025-06-01T00:30:02.113Z", "seconds": 0.081}]})

    request_id: str = Field(description="Quote it when asking about this call (audit log)")
    model_version: str = Field(description="The engine's current promoted model")
    decision: Literal["skin_cancer", "other_disease", "benign", "indeterminate",
                      "not_assessable"] = Field(description=(
                          "The group larger than the others, 'indeterminate' when none is, or "
                          "'not_assessable' (no diagnosis) when the image is not a skin "
                          "close-up the model can judge"))
    decision_text: str
    assessable: bool
    not_assessable_reason: str | None
    class_probabilities: dict[str, float] = Field(description=(
        "Fine diagnosis → calibrated probability (empty when not assessable)"))
    group_probabilities: dict[str, float] = Field(description=(
        "Triage group → probability (empty when not assessable)"))
    top_class: str | None
    referral: bool = Field(description="Safety flag: p(skin_cancer) >= referral_threshold")
    referral_threshold: float | None
    referral_text: str | None
    guidance: str = Field(description="What to do next, in the requested language")
    notice: str
    language: Literal["en", "ko"]
    quality: QualityOut | None
    heatmap_url: str | None = Field(description="Grad-CAM overlay as a data: URL, if asked")
    consent: bool
    stored_for_review: bool
    submission_id: str | None = Field(description="Id of the stored case (with consent)")
    end_user_id: str
    device_id: str
    access_time: datetime
    received_at: datetime = Field(description="When the engine received the image (upload)")
    seconds: float = Field(description="Preprocessing and model time")


class ProviderMeOut(BaseModel):
    """The calling provider and key."""

    model_config = ConfigDict(json_schema_extra={"examples": [{
        "provider_id": 1, "name": "Acme Teledermatology", "key_id": "4be0c7a9d2f1",
        "scopes": ["classify", "submit-for-review"], "requests_per_minute": 120,
        "requests_per_day": 20000}]})

    provider_id: int
    name: str
    key_id: str
    scopes: list[str]
    requests_per_minute: int
    requests_per_day: int


class UsageOut(BaseModel):
    """A provider's calls on one UTC day.

    ``requests`` = calls admitted (counted against the daily quota) = ``classified`` +
    ``rejected`` (bad image, 422) + ``failed`` (engine fault); ``not_assessable`` and
    ``submitted`` (stored with consent) are part of ``classified``; ``throttled`` (429) and
    ``busy`` (503) calls were not admitted.
    """

    model_config = ConfigDict(json_schema_extra={"examples": [{
        "day": "2025-06-01", "requests": 1250, "classified": 1240, "not_assessable": 31,
        "submitted": 402, "rejected": 9, "failed": 1, "throttled": 12, "busy": 3}]})

    day: date
    requests: int
    classified: int
    not_assessable: int
    submitted: int
    rejected: int
    failed: int
    throttled: int
    busy: int


class ProviderIn(_In):
    """A new provider and its quotas."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{
        "name": "Acme Teledermatology", "contact": "it@acme.example",
        "requests_per_minute": 120, "requests_per_day": 20000}]})

    name: Line = Field(min_length=1, max_length=200, description="The organisation")
    contact: Line = Field(default="", max_length=200)
    requests_per_minute: int = Field(default=60, ge=1, le=1_000_000)
    requests_per_day: int = Field(default=10_000, ge=1, le=100_000_000)


class ProviderUpdate(_In):
    """Quotas to change, or disable/enable the provider."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{
        "requests_per_minute": 300, "disabled": False}]})

    requests_per_minute: int | None = Field(default=None, ge=1, le=1_000_000)
    requests_per_day: int | None = Field(default=None, ge=1, le=100_000_000)
    disabled: bool | None = None


class ProviderOut(BaseModel):
    """A provider."""

    model_config = ConfigDict(json_schema_extra={"examples": [{
        "provider_id": 1, "name": "Acme Teledermatology", "contact": "it@acme.example",
        "requests_per_minute": 120, "requests_per_day": 20000, "disabled": False,
        "created_by": "account:root", "created_at": "2025-06-01T00:00:00Z"}]})

    provider_id: int
    name: str
    contact: str
    requests_per_minute: int
    requests_per_day: int
    disabled: bool
    created_by: str
    created_at: datetime


class KeyIn(_In):
    """A new API key."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{
        "scopes": ["classify", "submit-for-review"], "label": "production app"}]})

    scopes: list[Scope] = Field(default=["classify"], min_length=1)
    label: Line = Field(default="", max_length=200)


class RotateIn(_In):
    """How long the old key keeps working after rotation."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{
        "grace_seconds": 3600}]})

    grace_seconds: float = Field(default=0.0, ge=0, le=30 * 86400)


class KeyOut(BaseModel):
    """An API key's record (never the key)."""

    model_config = ConfigDict(json_schema_extra={"examples": [{
        "key_id": "4be0c7a9d2f1", "provider_id": 1, "scopes": ["classify"],
        "label": "production app", "created_by": "account:root",
        "created_at": "2025-06-01T00:00:00Z", "expires_at": None, "revoked_at": None,
        "last_used_at": "2025-06-02T08:15:00Z", "rotated_from": None, "active": True}]})

    key_id: str
    provider_id: int
    scopes: list[str]
    label: str
    created_by: str
    created_at: datetime
    expires_at: datetime | None
    revoked_at: datetime | None
    last_used_at: datetime | None
    rotated_from: str | None
    active: bool


class IssuedKeyOut(KeyOut):
    """A new key: ``key`` is shown only in this answer; store it in a secret manager."""

    model_config = ConfigDict(json_schema_extra={"examples": [{
        "key": "spk_4be0c7a9d2f1_q9Hc...", "key_id": "4be0c7a9d2f1", "provider_id": 1,
        "scopes": ["classify"], "label": "production app", "created_by": "account:root",
        "created_at": "2025-06-01T00:00:00Z", "expires_at": None, "revoked_at": None,
        "last_used_at": None, "rotated_from": None, "active": True}]})

    key: str


def _multipart_schema() -> dict[str, Any]:
    """The form fields: ClassifyOptions', less ``null`` (a form leaves an unset field out)."""
    schema = ClassifyOptions.model_json_schema()
    for spec in schema["properties"].values():
        choices = [choice for choice in spec.pop("anyOf", []) if choice != {"type": "null"}]
        if choices:
            spec.update(choices[0] if len(choices) == 1 else {"anyOf": choices})
        if spec.get("default", "") is None:
            del spec["default"]
    schema["properties"] = {"image": {"type": "string", "format": "binary",
                                      "description": "The image file (JPEG, PNG, TIFF, BMP, "
                                                     "WebP)"}, **schema["properties"]}
    schema["required"] = ["image", *schema.get("required", [])]
    return schema


CLASSIFY_BODY: dict[str, Any] = {"requestBody": {"required": True, "content": {
    "multipart/form-data": {"schema": _multipart_schema()},
    "application/json": {"schema": ClassifyJson.model_json_schema()},
}}}
