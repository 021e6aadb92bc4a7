"""Errors raised by the station's local storage."""

from __future__ import annotations


class StorageError(Exception):
    """Base class of every storage error."""


class NotFoundError(StorageError):
    """A referenced row (patient, visit, capture, operator...) does not exist."""


class ImageMissingError(StorageError):
    """A capture's image file is not on disk."""


class ImageIntegrityError(StorageError):
    """A capture's image file does not hash to the sha256 recorded for it (tampered or corrupt)."""


class InvalidImageError(StorageError):
    """Bytes or an array handed to the store are not an image the station can keep."""


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
