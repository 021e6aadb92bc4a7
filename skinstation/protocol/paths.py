"""API paths and multipart field names of the station ↔ engine protocol."""

from __future__ import annotations

API_VERSION = 1
API_PREFIX = f"/api/v{API_VERSION}"
CAPTURE_METADATA_FIELD = "metadata"  # multipart field names of POST /captures
CAPTURE_IMAGE_FIELD = "image"
