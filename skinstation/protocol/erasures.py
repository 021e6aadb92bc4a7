"""The erasure notice a station sends the engine (``POST /sync/erasures``), and its receipt.

A station that erased a patient (or captures past its retention period) tells the engine so
the engine erases its copies too. The notice names the patient by pseudonym (``None`` for a
retention erasure) and lists the erased captures' uids, at most :data:`MAX_NOTICE_UIDS` per
notice: a longer list goes in several notices with the same ``erasure_id``. Notices are
idempotent: sending one again erases nothing more and is answered the same way.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

from skinstation.protocol.fields import DbInt, Line

MAX_NOTICE_UIDS = 5000
Uid = Annotated[str, Field(
    pattern=r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")]


class ErasureReason(StrEnum):
    """Why data was erased: a fixed set, never free text that could name the patient."""

    PATIENT_REQUEST = "patient_request"
    ENTERED_IN_ERROR = "entered_in_error"
    RETENTION = "retention"


class ErasureNotice(BaseModel):
    """What a station erased.

    Attributes:
        erasure_id: The station's id of the erasure (echoed in the receipt).
        reason: Why (a fixed set: never free text that could name the patient).
        pseudonym: The patient erased (``None``: only the listed captures).
        capture_uids: The erased captures' uids.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    erasure_id: DbInt = Field(gt=0)
    reason: ErasureReason
    pseudonym: Line | None = Field(default=None, min_length=1, max_length=64)
    capture_uids: list[Uid] = Field(default_factory=list, max_length=MAX_NOTICE_UIDS)


class ErasureReceipt(BaseModel):
    """What the engine erased for a notice (or an administrator's erasure).

    Attributes:
        erasure_id: The station's erasure id (0 for an erasure made on the engine).
        engine_erasure_id: The engine's record of it (its audit row's entity id).
        patients: Patient rows deleted.
        sessions: Exam sessions deleted.
        captures: Captures deleted.
        predictions: Predictions deleted.
        reviews: Reviews deleted.
        image_files: Image files deleted.
        model_versions: Model versions trained on an erased capture (they have seen it).
    """

    model_config = ConfigDict(frozen=True)

    erasure_id: DbInt
    engine_erasure_id: DbInt
    patients: DbInt
    sessions: DbInt
    captures: DbInt
    predictions: DbInt
    reviews: DbInt
    image_files: DbInt
    model_versions: list[str]
