"""The signed model manifest: its fields, canonical bytes, signing and verification.

Both sides import this module, so the bytes the engine signs and the bytes a station verifies
are built by the same function.

A model manifest is a JSON object (see :data:`MANIFEST_FIELDS`) signed with the engine's
Ed25519 key over its canonical form (UTF-8 JSON, sorted keys, no spaces). A station pins the
engine's public key at enrollment and accepts a manifest only if the signature verifies with
that key, the ``key_id`` matches it and the ``deployment`` number is newer than the one it
already installed (so an old, validly signed manifest cannot roll a station back).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from pydantic import BaseModel, ConfigDict, Field

MANIFEST_FORMAT = "skinstation-model-manifest/1"
MANIFEST_FIELDS = (
    "format",
    "deployment",
    "action",
    "version",
    "file_sha256",
    "file_size",
    "content_sha256",
    "parent_version",
    "data_fingerprint",
    "deployed_at",
    "key_id",
)


class ManifestError(ValueError):
    """A model manifest is malformed, not signed by the pinned key, or stale."""


def canonical_json(document: dict[str, Any]) -> bytes:
    """The exact bytes that are signed: sorted keys, no whitespace, UTF-8."""
    return json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode(
        "utf-8"
    )


class ModelManifest(BaseModel):
    """A manifest's fields, typed; built only from a manifest whose signature verified."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    format: str
    deployment: int
    action: str
    version: str = Field(min_length=1, max_length=64)
    file_sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    file_size: int = Field(gt=0)
    content_sha256: str
    parent_version: str | None
    data_fingerprint: str
    deployed_at: str
    key_id: str


class SignedManifest(BaseModel):
    """``GET /models/current``: the manifest as signed (a plain object) and its signature."""

    manifest: dict[str, Any]
    signature: str


def sign_manifest_bytes(private_key: Ed25519PrivateKey, manifest: dict[str, Any]) -> str:
    """Base64 Ed25519 signature of the manifest's canonical bytes (the engine signs)."""
    return base64.b64encode(private_key.sign(canonical_json(manifest))).decode("ascii")


def encode_public_key(raw: bytes) -> str:
    """Base64 text of a raw 32-byte Ed25519 public key."""
    return base64.b64encode(raw).decode("ascii")


def key_id(public_key_b64: str) -> str:
    """Short fingerprint of a public key: the first 16 hex digits of its sha256."""
    return hashlib.sha256(_b64decode(public_key_b64, "public key")).hexdigest()[:16]


def _b64decode(text: str, what: str) -> bytes:
    try:
        return base64.b64decode(text.encode("ascii"), validate=True)
    except (binascii.Error, ValueError, UnicodeEncodeError) as error:
        raise ManifestError(f"{what} is not valid base64") from error


def verify_manifest(
    manifest: dict[str, Any],
    signature_b64: str,
    public_key_b64: str,
    *,
    newer_than: int = 0,
) -> ModelManifest:
    """Check a model manifest against the pinned engine key.

    Args:
        manifest: The manifest as received.
        signature_b64: Its base64 Ed25519 signature.
        public_key_b64: The engine key pinned at enrollment.
        newer_than: The deployment number already installed; older or equal ones are refused.

    Returns:
        The verified manifest, typed.

    Raises:
        ManifestError: With the reason (bad signature, wrong key, malformed, stale).
    """
    if not isinstance(manifest, dict):
        raise ManifestError("model manifest is not a JSON object")
    missing = [name for name in MANIFEST_FIELDS if name not in manifest]
    if missing:
        raise ManifestError(f"model manifest lacks field(s): {', '.join(missing)}")
    if manifest["format"] != MANIFEST_FORMAT:
        raise ManifestError(
            f"model manifest format {manifest['format']!r} is not {MANIFEST_FORMAT}"
        )
    pinned = key_id(public_key_b64)
    if manifest["key_id"] != pinned:
        raise ManifestError(
            f"model manifest is signed by key {manifest['key_id']!r}, not the engine key "
            f"{pinned!r} pinned at enrollment; refused"
        )
    try:
        public_key = Ed25519PublicKey.from_public_bytes(_b64decode(public_key_b64, "public key"))
    except ValueError as error:
        raise ManifestError(f"pinned engine key is unusable: {error}") from error
    try:
        public_key.verify(_b64decode(signature_b64, "signature"), canonical_json(manifest))
    except InvalidSignature as error:
        raise ManifestError(
            f"model manifest of version {manifest.get('version')!r} has an invalid signature "
            "(tampered or not from the enrolled engine); refused"
        ) from error
    deployment = manifest["deployment"]
    if not isinstance(deployment, int) or deployment <= newer_than:
        raise ManifestError(
            f"model manifest deployment {deployment!r} is not newer than the installed "
            f"deployment {newer_than}; refused (replayed or stale manifest)"
        )
    try:
        return ModelManifest.model_validate(manifest)
    except ValueError as error:
        raise ManifestError(f"model manifest is malformed: {error}") from None
