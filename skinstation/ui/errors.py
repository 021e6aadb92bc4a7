"""Turning exceptions into clear, translated messages for the window (never a stack trace)."""

from __future__ import annotations

import logging
from collections.abc import Callable

from sqlalchemy.exc import DBAPIError

from skinstation.auth import AuthError
from skinstation.camera import CameraDisconnectedError, CameraError, IlluminatorError
from skinstation.core.i18n import TranslatableError
from skinstation.inference.model_file import ModelFileError
from skinstation.services.station import SyntheticFrameError
from skinstation.storage import ImageError, StorageError

log = logging.getLogger(__name__)

Translate = Callable[..., str]


def detail_of(error: BaseException, tr: Translate) -> str:
    """The error's own message in the window's language (its English text if it has no key)."""
    if isinstance(error, TranslatableError):
        return tr(error.text_key, **error.text_values)
    return str(error)


def describe_error(error: BaseException, tr: Translate) -> str:
    """A sentence for the operator about ``error`` (the traceback goes to the log only).

    Args:
        error: What went wrong.
        tr: The translation function (``key, **values -> text``).
    """
    if isinstance(error, AuthError | SyntheticFrameError):
        return detail_of(error, tr)
    if isinstance(error, ModelFileError):
        return tr("ui.error.model", detail=detail_of(error, tr))
    if isinstance(error, CameraDisconnectedError):
        return tr("ui.error.camera_unplugged", detail=detail_of(error, tr))
    if isinstance(error, CameraError):
        return tr("ui.error.camera", detail=detail_of(error, tr))
    if isinstance(error, IlluminatorError):
        return tr("ui.error.light", detail=detail_of(error, tr))
    if isinstance(error, DBAPIError):
        detail = str(error.orig) if error.orig is not None else str(error).splitlines()[0]
        if "locked" in detail.lower() or "busy" in detail.lower():
            return tr("ui.error.database_locked")
        return tr("ui.error.database", detail=detail)
    if isinstance(error, StorageError | ImageError):
        return tr("ui.error.storage", detail=detail_of(error, tr))
    if isinstance(error, TranslatableError | ValueError | OSError):
        return detail_of(error, tr)
    log.error("unexpected error", exc_info=error)
    return tr("ui.error.unexpected", kind=type(error).__name__, detail=str(error))
