"""Sending the station's erasures to the engine, first thing in every sync round.

Each pending erasure (:mod:`skinstation.storage.erasure`) goes as one or more
:class:`~skinstation.protocol.erasures.ErasureNotice` (at most ``MAX_NOTICE_UIDS`` capture uids
each, all with the erasure's id: the engine answers a repeated notice the same way). Once the
engine has answered every part, the erasure is confirmed and its pseudonym forgotten, with an
``erasure.confirmed`` audit row holding the engine's counts.

One erasure the engine refuses (a 4xx) stays pending with a logged warning and never blocks
the others or the uploads after it; the engine unreachable or the station's token refused
ends the round (the erasures are sent again next round).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from skinstation.core.timeutil import Clock, utc_now
from skinstation.protocol.erasures import MAX_NOTICE_UIDS, ErasureNotice, ErasureReason
from skinstation.storage import Database
from skinstation.storage.erasure import (
    PendingErasure,
    confirm_erasure,
    pending_erasures,
    run_retention_if_due,
)
from skinstation.sync.client import CredentialRejectedError, EngineClient, EngineRejectedError

log = logging.getLogger(__name__)


@dataclass
class ErasureResult:
    """What one round did with the pending erasures.

    Attributes:
        confirmed: Station erasure ids the engine confirmed.
        refused: Erasure id → the engine's refusal (they stay pending).
    """

    confirmed: list[int] = field(default_factory=list)
    refused: dict[int, str] = field(default_factory=dict)


def notices(erasure: PendingErasure) -> list[ErasureNotice]:
    """The notices that carry one erasure (at least one, even without captures)."""
    uids = list(erasure.capture_uids)
    parts = [uids[start:start + MAX_NOTICE_UIDS]
             for start in range(0, len(uids), MAX_NOTICE_UIDS)] or [[]]
    return [ErasureNotice(erasure_id=erasure.erasure_id, reason=ErasureReason(erasure.reason),
                          pseudonym=erasure.pseudonym, capture_uids=part) for part in parts]


def send_erasures(database: Database, client: EngineClient, *,
                  clock: Clock = utc_now) -> ErasureResult:
    """Send every pending erasure, oldest first, and confirm those the engine answered.

    Raises:
        EngineUnreachableError: The engine went away (the rest are sent next round).
        CredentialRejectedError: The station's token was refused.
    """
    result = ErasureResult()
    for erasure in pending_erasures(database, limit=1000):
        captures = sessions = patients = 0
        versions: set[str] = set()
        try:
            for notice in notices(erasure):
                receipt = client.send_erasure(notice)
                captures += receipt.captures
                sessions += receipt.sessions
                patients += receipt.patients
                versions.update(receipt.model_versions)
        except CredentialRejectedError:
            raise
        except EngineRejectedError as error:
            log.warning("engine refused erasure %d: %s", erasure.erasure_id, error)
            result.refused[erasure.erasure_id] = str(error)
            continue
        confirm_erasure(database, erasure.erasure_id, now=clock(), engine_detail={
            "engine_captures": captures, "engine_sessions": sessions,
            "engine_patients": patients, "model_versions": sorted(versions)})
        result.confirmed.append(erasure.erasure_id)
    return result


def retention_if_due(database: Database, clock: Clock = utc_now) -> None:
    """Apply the station's retention period if due today (for the sync loop; never raises)."""
    try:
        run_retention_if_due(database, clock())
    except Exception:  # the sync thread must go on; tried again on the next loop
        log.exception("retention failed")
