"""Errors raised by the station's local storage (the image-file errors come from core)."""

from __future__ import annotations

from skinstation.core.images import ImageError as ImageError
from skinstation.core.images import ImageIntegrityError as ImageIntegrityError
from skinstation.core.images import ImageMissingError as ImageMissingError
from skinstation.core.images import InvalidImageError as InvalidImageError


class StorageError(Exception):
    """Base class of every storage error."""


class NotFoundError(StorageError):
    """A referenced row (patient, visit, capture, operator...) does not exist."""


class PatientNameNotAllowedError(StorageError):
    """A patient name was given but this station is configured not to store names."""


class DuplicateError(StorageError):
    """A row that must be unique already exists (pseudonym, original label, multispectral slot)."""


class LabelRuleError(StorageError):
    """A label or review breaks the labelling rules (wrong role, not the author, closed visit)."""


class AppendOnlyError(StorageError):
    """Code tried to change or delete a row of an append-only table (audit log, labels)."""


class InactiveOperatorError(StorageError):
    """The operator named as author or actor of a change is disabled."""


class VisitClosedError(StorageError):
    """A capture was saved into a visit that has already been closed."""
