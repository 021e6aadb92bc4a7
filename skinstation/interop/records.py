"""What an export needs to know about one capture: plain, typed, read from storage above.

:func:`skinstation.services.export.load_export_record` builds an :class:`ExportCapture`
from the station database (audited reads); the DICOM and FHIR builders only read it. The
patient's name is in it only where the station is configured to send names.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime

import numpy as np

NOT_A_DIAGNOSIS = (
    "Triage support only, not a diagnosis: this result of an automated classifier must be "
    "read by a clinician before any decision about the patient."
)
"""The notice every export carries (DICOM Image Comments, FHIR report conclusion and text)."""

UID_ROOT = "2.25."
"""DICOM UIDs from UUIDs (PS3.5 B.2): ``2.25.<the UUID as an integer>``."""

_UID_NAMESPACE = uuid.UUID("6f1c1bd4-3c77-4e0e-9a53-2b3f0c8f2d11")
"""Namespace of the name-based UUIDs of series and of visits without a UUID."""


def uuid_to_uid(value: str | uuid.UUID) -> str:
    """The DICOM UID of a UUID (at most 44 characters, below the limit of 64)."""
    return f"{UID_ROOT}{uuid.UUID(str(value)).int}"


def name_to_uid(*parts: str) -> str:
    """A stable DICOM UID for a name (the same parts always give the same UID)."""
    return uuid_to_uid(uuid.uuid5(_UID_NAMESPACE, "/".join(parts)))


@dataclass(frozen=True)
class ExportPrediction:
    """The classifier's output stored with the capture (its latest prediction).

    Attributes:
        model_version: Version of the model that produced it.
        decision: A triage group code, ``indeterminate`` or ``not_assessable``.
        referral: The referral flag (None when not assessable).
        group_probabilities: Triage group → probability.
        created_at: When it was stored.
    """

    model_version: str
    decision: str
    referral: bool | None
    group_probabilities: Mapping[str, float]
    created_at: datetime


@dataclass(frozen=True)
class ExportCapture:
    """One capture with its patient, visit and prediction, as exports show them.

    Attributes:
        capture_id: The capture's local id.
        capture_uid: Its UUID (the SOP Instance UID and the FHIR ids derive from it).
        station_id: The station that took it.
        device_id: The camera/illuminator identifier.
        band: The illumination band (``white``, ``cross_polarised``, ``uv_365``...).
        body_site: The station body-site code (see :mod:`.body_sites`).
        capture_time: When the frame was taken (aware).
        pixels: The image, RGB ``uint8`` of shape (rows, columns, 3).
        image: The stored image bytes (as kept: PNG, JPEG...).
        image_media_type: Its media type (``image/png``, ``image/jpeg``...).
        lossy: True when the stored image may be lossy-compressed (JPEG, WebP).
        patient_pseudonym: The patient's pseudonymous id (the identity in every export).
        patient_name: The patient's name; None unless names may leave the station.
        visit_uid: The visit's identity (a UUID, or an older visit's plain ref).
        visit_number: The visit's place among its patient's visits.
        visit_opened_at: When the visit was opened.
        multispectral_group_id: The multispectral shot the capture belongs to (or None).
        multispectral_index: Its position in that shot (or None).
        prediction: The latest prediction (None if never classified).
        software_version: SkinStation's version.
    """

    capture_id: int
    capture_uid: str
    station_id: str
    device_id: str
    band: str
    body_site: str
    capture_time: datetime
    pixels: np.ndarray = field(repr=False)
    image: bytes = field(repr=False)
    image_media_type: str
    lossy: bool
    patient_pseudonym: str
    patient_name: str | None
    visit_uid: str
    visit_number: int
    visit_opened_at: datetime
    multispectral_group_id: str | None
    multispectral_index: int | None
    prediction: ExportPrediction | None
    software_version: str

    @property
    def study_uid(self) -> str:
        """The Study Instance UID: the visit."""
        try:
            return uuid_to_uid(self.visit_uid)
        except ValueError:  # a visit from before migration 0004: its ref is str(id)
            return name_to_uid("visit", self.station_id, self.visit_uid)

    @property
    def series_uid(self) -> str:
        """The Series Instance UID: the multispectral shot, else the capture alone."""
        return name_to_uid("series", self.multispectral_group_id or self.capture_uid)

    @property
    def instance_uid(self) -> str:
        """The SOP Instance UID: the capture."""
        return uuid_to_uid(self.capture_uid)
