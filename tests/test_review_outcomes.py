"""Station reviews (issue 19 point 9): agree vs correct, outcomes beside the classes, undo.

Outcomes that are no diagnosis class (uncertain, biopsy pending, SCC, other) are stored on the
station and never sent to the engine, so they never become a training label; a review undone
before it is synced leaves the capture's upload and puts it back in the queue.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy import select

from skinstation.auth import Role, Session
from skinstation.services import review as reviews
from skinstation.services.station import StationService
from skinstation.settings import Settings
from skinstation.storage import LabelRuleError, Outbox, SyncRecords
from skinstation.storage.erasure import erase_patient
from skinstation.storage.labels import REVIEW_OUTCOMES, is_training_label
from skinstation.storage.models import AuditEvent, Capture, ReviewDetail, Visit
from tests.test_engine_helpers import Station, add_capture, ham_images, make_station
from tests.test_protocol import release_1_upload_document

PASSWORD = "correct horse battery"


@dataclass
class Room:
    """A station with a service, two dermatologists' sessions and three captures."""

    station: Station
    service: StationService
    derm: Session
    other_derm: Session
    captures: list[Capture]

    def queue_ids(self) -> list[int]:
        return [s.capture_id for s in self.service.review_queue(self.derm)]

    def uploaded_labels(self, capture_id: int) -> list[tuple[str, str]]:
        upload = SyncRecords(self.station.database).upload_of(capture_id)
        return [(label.kind, label.code) for label in upload.document.labels]


@pytest.fixture()
def room(tmp_path: Path, ham_dir: Path, settings: Settings) -> Iterator[Room]:
    station_settings = settings.replace(home=tmp_path / "station")
    station = make_station(station_settings)
    service = StationService(station_settings, database=station.database)
    service.create_first_admin("admin", "Admin", PASSWORD)
    admin = service.login("admin", PASSWORD)
    service.create_operator(admin, "derm", "Dr Lee", Role.DERMATOLOGIST, PASSWORD)
    service.create_operator(admin, "derm2", "Dr Park", Role.DERMATOLOGIST, PASSWORD)
    captures = [add_capture(station, image, minutes=index)  # model's top class: nv
                for index, image in enumerate(ham_images(ham_dir, 3, skip=930))]
    yield Room(station, service, service.login("derm", PASSWORD),
               service.login("derm2", PASSWORD), captures)
    station.database.dispose()


def _details(room: Room, label_id: int) -> ReviewDetail:
    with room.station.database.transaction() as session:
        detail = session.scalar(select(ReviewDetail).where(ReviewDetail.label_id == label_id))
        assert detail is not None
        return detail


def test_agree_and_correct_are_stored_distinctly(room: Room) -> None:
    first, second, _ = room.captures
    agreed = reviews.submit_review(room.service, room.derm, first.id, "agree")
    corrected = reviews.submit_review(room.service, room.derm, second.id, "correct", "mel",
                                      note="irregular network")
    assert (agreed.label.code, agreed.detail.action) == ("nv", "agree")
    assert (corrected.label.code, corrected.detail.action) == ("mel", "correct")
    history = room.service.capture_detail(room.derm, second.id).labels
    assert history.final is not None and history.final.code == "mel"
    assert history.details[history.final.id].action == "correct"
    assert _details(room, agreed.label.id).action == "agree"
    with room.station.database.transaction() as session:
        audit = [row.detail for row in session.scalars(
            select(AuditEvent).where(AuditEvent.action == "review.added").order_by(AuditEvent.id))]
    assert [(d["code"], d["action"]) for d in audit] == [("nv", "agree"), ("mel", "correct")]


def test_a_choice_must_fit_its_action(room: Room) -> None:
    capture_id = room.captures[0].id
    with pytest.raises(ValueError, match="agree instead of correcting"):
        reviews.submit_review(room.service, room.derm, capture_id, "correct", "nv")
    with pytest.raises(ValueError, match="needs the diagnosis or outcome chosen"):
        reviews.submit_review(room.service, room.derm, capture_id, "correct")
    with pytest.raises(ValueError, match="unknown diagnosis code 'melanoma'"):
        reviews.submit_review(room.service, room.derm, capture_id, "correct", "melanoma")
    with pytest.raises(ValueError, match="agreeing means the model's class 'nv', not 'mel'"):
        reviews.submit_review(room.service, room.derm, capture_id, "agree", "mel")
    with pytest.raises(ValueError, match='the outcome "other" needs its free text'):
        reviews.submit_review(room.service, room.derm, capture_id, "correct", "other",
                              other_text="   ")
    with pytest.raises(ValueError, match='free text is only given with the outcome "other"'):
        reviews.submit_review(room.service, room.derm, capture_id, "correct", "scc",
                              other_text="keratoacanthoma")
    assert room.service.capture_detail(room.derm, capture_id).labels.reviews == ()


def test_the_choices_are_the_model_classes_then_the_outcomes(room: Room) -> None:
    choices = reviews.review_choices(room.service)
    assert choices.classes == ("akiec", "bcc", "bkl", "df", "mel", "nv", "vasc")
    assert choices.outcomes == ("uncertain", "biopsy_pending", "scc", "other")


@pytest.mark.parametrize(("code", "text"), [("uncertain", None), ("biopsy_pending", None),
                                            ("scc", None), ("other", "keratoacanthoma")])
def test_each_outcome_is_stored(room: Room, code: str, text: str | None) -> None:
    capture_id = room.captures[0].id
    stored = reviews.submit_review(room.service, room.derm, capture_id, "correct", code,
                                   other_text=text)
    history = room.service.capture_detail(room.derm, capture_id).labels
    assert history.final is not None and history.final.id == stored.label.id
    assert history.final.code == code
    assert (history.details[stored.label.id].action,
            history.details[stored.label.id].other_text) == ("correct", text)
    summary = next(s for s in room.service.history(room.derm) if s.capture_id == capture_id)
    assert summary.final_label == code


@pytest.mark.parametrize("code", REVIEW_OUTCOMES)
def test_a_non_class_outcome_is_never_a_training_label(room: Room, code: str) -> None:
    capture_id = room.captures[0].id
    stored = reviews.submit_review(room.service, room.derm, capture_id, "correct", code,
                                   other_text="keratoacanthoma" if code == "other" else None)
    assert not is_training_label(stored.label)
    # the upload carries the operator's label only: the engine never sees the outcome
    assert room.uploaded_labels(capture_id) == [("operator", "nv")]


def test_a_biopsy_result_replaces_biopsy_pending(room: Room) -> None:
    first, second, third = room.captures
    reviews.submit_review(room.service, room.derm, first.id, "correct", "biopsy_pending")
    reviews.submit_review(room.service, room.derm, second.id, "agree")
    # awaiting its biopsy, the case stays in the queue, after the unreviewed ones
    assert room.queue_ids() == [third.id, first.id]
    reviews.submit_review(room.service, room.other_derm, first.id, "correct", "mel",
                          note="biopsy: melanoma in situ")
    history = room.service.capture_detail(room.derm, first.id).labels
    assert [r.code for r in history.reviews] == ["biopsy_pending", "mel"]
    assert history.final is not None and history.final.code == "mel"
    assert room.queue_ids() == [third.id]
    # only the diagnosis goes to the engine (a proposal it queues), not the pending biopsy
    assert room.uploaded_labels(first.id) == [("operator", "nv"), ("review", "mel")]


def test_class_reviews_upload_byte_identical_to_release_1(room: Room) -> None:
    first, second, _ = room.captures
    reviews.submit_review(room.service, room.derm, first.id, "agree")
    reviews.submit_review(room.service, room.derm, second.id, "correct", "bcc")
    records = SyncRecords(room.station.database)
    for capture_id in (first.id, second.id):
        upload = records.upload_of(capture_id)
        assert json.dumps(upload.metadata) == json.dumps(
            release_1_upload_document(room.station.database, capture_id))


def test_undo_restores_the_case_to_the_queue(room: Room) -> None:
    first, second, third = room.captures
    stored = reviews.submit_review(room.service, room.derm, first.id, "correct", "mel")
    assert room.queue_ids() == [second.id, third.id]
    assert not reviews.review_synced(room.service, room.derm, stored.label.id)
    reviews.undo_review(room.service, room.derm, stored.label.id)
    assert room.queue_ids() == [first.id, second.id, third.id]
    history = room.service.capture_detail(room.derm, first.id).labels
    assert history.reviews == () and history.final is not None and history.final.code == "nv"
    assert room.uploaded_labels(first.id) == [("operator", "nv")]
    detail = _details(room, stored.label.id)
    assert detail.withdrawn_by_id == room.derm.operator_id and detail.withdrawn_at is not None
    with room.station.database.transaction() as session:
        undo = session.scalars(select(AuditEvent).where(
            AuditEvent.action == "review.withdrawn")).one()
    assert (undo.actor_id, undo.entity_id) == (room.derm.operator_id, str(first.id))
    assert undo.detail == {"label_id": stored.label.id, "code": "mel", "action": "correct"}
    with pytest.raises(LabelRuleError, match="already undone"):
        reviews.undo_review(room.service, room.derm, stored.label.id)


def test_only_ones_own_latest_review_of_this_session_is_undone(room: Room) -> None:
    capture_id = room.captures[0].id
    first = reviews.submit_review(room.service, room.derm, capture_id, "correct", "uncertain")
    with pytest.raises(LabelRuleError, match="only the dermatologist who wrote"):
        reviews.undo_review(room.service, room.other_derm, first.label.id)
    reviews.submit_review(room.service, room.derm, capture_id, "correct", "bcc")
    with pytest.raises(LabelRuleError, match="only the latest review can be undone"):
        reviews.undo_review(room.service, room.derm, first.label.id)
    later = room.service.login("derm", PASSWORD)
    last = room.service.capture_detail(later, capture_id).labels.final
    assert last is not None
    with pytest.raises(LabelRuleError, match="made before this session"):
        reviews.undo_review(room.service, later, last.id)


def test_a_synced_review_cannot_be_undone_here(room: Room) -> None:
    first, second, _ = room.captures
    stored = reviews.submit_review(room.service, room.derm, first.id, "correct", "mel")
    outbox = Outbox(room.station.database)
    outbox.mark_sent(first.id)  # the upload under way carries the review
    assert reviews.review_synced(room.service, room.derm, stored.label.id)
    outbox.mark_confirmed(first.id, engine_capture_id=7, duplicate=False)
    with pytest.raises(reviews.ReviewSyncedError, match="cannot be undone on the station"):
        reviews.undo_review(room.service, room.derm, stored.label.id)
    assert room.service.capture_detail(room.derm, first.id).labels.final.code == "mel"
    # a review made after the upload was confirmed never left the station
    outbox.mark_sent(second.id)
    outbox.mark_confirmed(second.id, engine_capture_id=8, duplicate=False)
    late = reviews.submit_review(room.service, room.derm, second.id, "agree")
    assert not reviews.review_synced(room.service, room.derm, late.label.id)
    reviews.undo_review(room.service, room.derm, late.label.id)


def test_erasing_the_patient_erases_the_review_details(room: Room) -> None:
    reviews.submit_review(room.service, room.derm, room.captures[0].id, "correct", "other",
                          other_text="keratoacanthoma")
    with room.station.database.transaction() as session:
        visit = session.get(Visit, room.station.visit_id)
        assert visit is not None
        patient_id = visit.patient_id
    erase_patient(room.station.database, patient_id, actor_id=None, reason="patient_request")
    with room.station.database.transaction() as session:
        assert session.scalars(select(ReviewDetail)).all() == []
