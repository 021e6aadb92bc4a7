"""Saving a capture: its checked details, the image file, the row and its outbox entry."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from skinstation.core.images import EncodedImage, ImageStore
from skinstation.storage.errors import DuplicateError, VisitClosedError
from skinstation.storage.models import Capture, Lesion, OutboxEntry, OutboxState, Visit
from skinstation.storage.validation import (
    active_operator,
    get_or_raise,
    require_db_integer,
    require_plausible_time,
    require_text,
)


@dataclass(frozen=True)
class CaptureDetails:
    """Everything recorded about a capture besides its pixels (validated, times in UTC)."""

    band: str
    body_site: str
    device_id: str
    operator_id: int
    access_time: datetime
    capture_time: datetime
    multispectral_group_id: str | None = None
    multispectral_index: int | None = None
    lesion_id: int | None = None
    field_of_view_mm: float | None = None

    @classmethod
    def checked(
        cls,
        *,
        band: str,
        body_site: str,
        device_id: str,
        operator_id: int,
        access_time: datetime,
        capture_time: datetime,
        multispectral_group_id: str | None = None,
        multispectral_index: int | None = None,
        lesion_id: int | None = None,
        field_of_view_mm: float | None = None,
    ) -> CaptureDetails:
        """Validate and normalise the details.

        ``field_of_view_mm``: the width the image shows, in mm (the dermatoscope's field of
        view), or None when not known; the capture's ``mm_per_pixel`` is it divided by the
        stored image's width.

        Raises:
            ValueError: On an empty or too long text or one with control characters, a naive
                time or one outside the years 1900-2200, a bad or half a multispectral
                position, or a field of view that is not a positive finite number.
        """
        if field_of_view_mm is not None and (
                isinstance(field_of_view_mm, bool)
                or not isinstance(field_of_view_mm, int | float)
                or not 0 < field_of_view_mm < float("inf")):
            raise ValueError(f"field_of_view_mm must be a positive width in mm, got "
                             f"{field_of_view_mm!r}")
        if (multispectral_group_id is None) != (multispectral_index is None):
            raise ValueError("give both multispectral_group_id and multispectral_index, or neither")
        if multispectral_index is not None:
            require_db_integer(multispectral_index, "multispectral_index")
        return cls(
            band=require_text(band, "band", 32),
            body_site=require_text(body_site, "body_site", 64),
            device_id=require_text(device_id, "device_id", 128),
            operator_id=operator_id,
            access_time=require_plausible_time(access_time, "access_time"),
            capture_time=require_plausible_time(capture_time, "capture_time"),
            multispectral_group_id=(
                None
                if multispectral_group_id is None
                else require_text(multispectral_group_id, "multispectral_group_id", 36)
            ),
            multispectral_index=multispectral_index,
            lesion_id=None if lesion_id is None else require_db_integer(lesion_id, "lesion_id"),
            field_of_view_mm=None if field_of_view_mm is None else float(field_of_view_mm),
        )


def insert_capture(
    session: Session,
    images: ImageStore,
    visit_id: int,
    encoded: EncodedImage,
    details: CaptureDetails,
    *,
    station_id: str,
    now: datetime,
) -> Capture:
    """Write the image file durably, then add the capture row and its pending outbox entry.

    The file is on disk (fsynced) before the caller's transaction can commit. If that
    transaction fails, the file is an orphan that start-up recovery deletes.

    Raises:
        NotFoundError: If the visit or operator does not exist.
        InactiveOperatorError: If the operator is disabled.
        VisitClosedError: If the visit is closed.
        DuplicateError: If the multispectral slot is already taken.
        ValueError: If the lesion is not one of the visit's patient.
    """
    _check_target(session, visit_id, details)
    ref = images.put(encoded)
    capture = Capture(
        uid=str(uuid.uuid4()),
        visit_id=visit_id,
        operator_id=details.operator_id,
        station_id=station_id,
        device_id=details.device_id,
        band=details.band,
        body_site=details.body_site,
        image_ref=ref,
        image_sha256=encoded.sha256,
        image_format=encoded.extension,
        image_size=len(encoded.data),
        width=encoded.width,
        height=encoded.height,
        access_time=details.access_time,
        capture_time=details.capture_time,
        saved_at=now,
        multispectral_group_id=details.multispectral_group_id,
        multispectral_index=details.multispectral_index,
        lesion_id=details.lesion_id,
        mm_per_pixel=(None if details.field_of_view_mm is None
                      else details.field_of_view_mm / encoded.width),
    )
    session.add(capture)
    session.flush()
    session.add(
        OutboxEntry(
            capture_id=capture.id,
            state=OutboxState.PENDING.value,
            attempts=0,
            created_at=now,
            updated_at=now,
        )
    )
    session.flush()
    return capture


def _check_target(session: Session, visit_id: int, details: CaptureDetails) -> None:
    active_operator(session, details.operator_id)
    visit = get_or_raise(session, Visit, visit_id)
    if visit.closed_at is not None:
        raise VisitClosedError(f"visit {visit_id} is closed; open a new visit to capture")
    if details.lesion_id is not None:
        lesion_patient = session.scalar(
            select(Lesion.patient_id).where(Lesion.id == details.lesion_id))
        if lesion_patient != visit.patient_id:
            raise ValueError(f"lesion {details.lesion_id} is not a lesion of this visit's patient")
    if details.multispectral_group_id is None:
        return
    taken = session.scalar(
        select(Capture.id).where(
            Capture.multispectral_group_id == details.multispectral_group_id,
            Capture.multispectral_index == details.multispectral_index,
        )
    )
    if taken is not None:
        raise DuplicateError(
            f"multispectral group {details.multispectral_group_id} already has index "
            f"{details.multispectral_index} (capture {taken})"
        )
