"""Routes of the patients domain: an administrator erases a patient; a station reports one."""

from __future__ import annotations

from fastapi import APIRouter

from skinstation.engine.deps import (
    ADMIN,
    ADMIN_ERRORS,
    STATION_AUTH_ERRORS,
    Account,
    Db,
    RowId,
    Station,
)
from skinstation.engine.errors import InvalidError
from skinstation.engine.patients import service as patients
from skinstation.engine.patients.schemas import EraseRequest
from skinstation.protocol.erasures import ErasureNotice, ErasureReason, ErasureReceipt

admin_router = APIRouter(prefix="/admin", tags=["admin"])
station_router = APIRouter(tags=["stations"])


@admin_router.post("/patients/{patient_id}/erase", response_model=ErasureReceipt,
                   responses={404: {"description": "no such patient"}, **ADMIN_ERRORS})
def erase_patient(patient_id: RowId, body: EraseRequest, account: Account,
                  db: Db) -> ErasureReceipt:
    """Erase a patient's captures, images, predictions, reviews and sessions from the engine.

    The audit row names no patient; model versions that trained on an erased capture are
    listed in the answer (they have seen the case). The station keeps its own copy: erase it
    there too (``skinstation patient erase``).
    """
    account.require(ADMIN)
    if body.reason == ErasureReason.RETENTION:
        raise InvalidError("reason 'retention' is for the retention period; use "
                           "patient_request or entered_in_error")
    return patients.erase(db, actor=account.actor, reason=body.reason, patient_id=patient_id)


@station_router.post("/sync/erasures", response_model=ErasureReceipt,
                     responses=STATION_AUTH_ERRORS)
def station_erasure(body: ErasureNotice, station: Station, db: Db) -> ErasureReceipt:
    """Erase what the station erased: its own patient (by pseudonym) and listed captures only.

    Idempotent: a notice sent again erases nothing more and gets the same answer.
    """
    return patients.erase_for_station(db, station, body)
