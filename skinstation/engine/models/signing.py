"""The engine's Ed25519 key that signs model manifests, kept in an owner-only file.

The private key lives in ``<engine home>/keys/signing_key.pem`` (PKCS#8 PEM, mode 0600, in a
0700 folder); a key file readable by group or others is refused. Its public half is recorded in
the database, so API processes (which never sign) can hand it to enrolling stations without
access to the private key. Only the processes that deploy models (worker, CLI) need the file.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import select

from skinstation.core.files import fsync_directory, private_dir
from skinstation.core.timeutil import utc_now
from skinstation.engine.audit import service as audit
from skinstation.engine.database import EngineDatabase
from skinstation.engine.errors import EngineError
from skinstation.engine.models.models import SigningKey
from skinstation.protocol.manifest import encode_public_key, key_id, sign_manifest_bytes

KEY_FILE_MODE = 0o600


class SigningKeyError(EngineError):
    """The signing key file is missing, unsafe, unreadable or not the registered key."""


def _public_b64(private_key: Ed25519PrivateKey) -> str:
    raw = private_key.public_key().public_bytes(
        serialization.Encoding.Raw, serialization.PublicFormat.Raw
    )
    return encode_public_key(raw)


def _write_new_key(path: Path) -> Ed25519PrivateKey:
    private_dir(path.parent)
    private_key = Ed25519PrivateKey.generate()
    pem = private_key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, KEY_FILE_MODE)
    with os.fdopen(fd, "wb") as handle:
        handle.write(pem)
        handle.flush()
        os.fsync(handle.fileno())
    fsync_directory(path.parent)
    return private_key


def load_private_key(path: Path) -> Ed25519PrivateKey:
    """Read the private key, refusing a file others can read.

    Raises:
        SigningKeyError: Missing, group/other-accessible, or not an Ed25519 key.
    """
    try:
        mode = stat.S_IMODE(path.stat().st_mode)
    except FileNotFoundError:
        raise SigningKeyError(
            f"signing key {path} not found; run 'skinstation engine init' on this node"
        ) from None
    if mode & 0o077:
        raise SigningKeyError(
            f"signing key {path} has mode {mode:04o}; it must be readable by its owner only "
            f"(chmod 600 {path})"
        )
    key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    if not isinstance(key, Ed25519PrivateKey):
        raise SigningKeyError(f"{path} is not an Ed25519 private key")
    return key


def ensure_signing_key(db: EngineDatabase, *, actor: str) -> str:
    """Create the key file and register its public key if the database has none.

    Returns:
        The active public key (base64).

    Raises:
        SigningKeyError: The database has a key but this node's file is a different one.
    """
    path = db.paths.signing_key
    with db.transaction() as session:
        registered = session.scalar(select(SigningKey).order_by(SigningKey.id.desc()).limit(1))
        if registered is not None:
            if path.exists() and _public_b64(load_private_key(path)) != registered.public_key:
                raise SigningKeyError(
                    f"signing key {path} is not the key registered in the engine database "
                    f"(key id {registered.key_id})"
                )
            return registered.public_key
        private_key = load_private_key(path) if path.exists() else _write_new_key(path)
        public = _public_b64(private_key)
        session.add(SigningKey(key_id=key_id(public), public_key=public, created_at=utc_now()))
        audit.record(session, actor, "signing_key.created", "signing_key", key_id(public))
        return public


def active_public_key(db: EngineDatabase) -> tuple[str, str]:
    """The registered public key and its id.

    Raises:
        SigningKeyError: No key yet.
    """
    with db.transaction() as session:
        key = session.scalar(select(SigningKey).order_by(SigningKey.id.desc()).limit(1))
    if key is None:
        raise SigningKeyError("the engine has no signing key; run 'skinstation engine init'")
    return key.public_key, key.key_id


def sign_manifest(db: EngineDatabase, manifest: dict[str, Any], registered_public: str) -> str:
    """Sign a manifest's canonical form with this node's key; returns the base64 signature.

    Args:
        db: The engine database (for the key file's path).
        manifest: The manifest; its ``key_id`` must name the registered key.
        registered_public: The public key registered in the database
            (:func:`active_public_key`, read before the caller's transaction).

    Raises:
        SigningKeyError: No usable key file, or it is not the registered key.
    """
    private_key = load_private_key(db.paths.signing_key)
    if _public_b64(private_key) != registered_public:
        raise SigningKeyError("this node's signing key is not the key registered in the database")
    if manifest.get("key_id") != key_id(registered_public):
        raise SigningKeyError("manifest names another key id than the engine's signing key")
    return sign_manifest_bytes(private_key, manifest)
