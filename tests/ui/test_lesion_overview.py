"""The lesion timeline's overview photo (issue 20): one of the patient's captures chosen, the
lesion marked on it by a click, read back from the service, drawn, and cleared; and a
comparison the service refuses, said in the Korean window's Korean."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import cv2
import numpy as np
import pytest
from PySide6.QtCore import Qt
from sqlalchemy import select

from skinstation.camera import Frame
from skinstation.core.i18n import text
from skinstation.services.lesions import LesionService
from skinstation.services.models import ModelManager
from skinstation.services.station import StationService
from skinstation.settings import Settings
from skinstation.storage import AuditEvent
from tests.ui.helpers import PASSWORD, TIMEOUT, log_in

T0 = dt.datetime.now(dt.UTC) - dt.timedelta(days=90)


def _skin(radius: int, seed: int) -> np.ndarray:
    """Skin with a little texture and, for ``radius`` > 0, a dark round lesion (450×600)."""
    rng = np.random.default_rng(seed)
    image = np.clip(np.full((450, 600, 3), (205, 160, 140), np.float64)
                    + rng.normal(0, 6, (450, 600, 3)), 0, 255).astype(np.uint8)
    if radius:
        cv2.circle(image, (300, 225), radius, (95, 60, 45), -1)
    else:
        image[:] = image.mean(axis=(0, 1)).astype(np.uint8)
    return image


@dataclass
class Seeded:
    patient_id: int
    lesion_id: int
    captures: list[int]
    """Oldest first: the lesion's captures, then (last) a capture of no lesion."""


def _seed(station: Settings, models: ModelManager, images: list[np.ndarray],
          with_loose: bool) -> Seeded:
    """A patient, a lesion captured once per image, on separate days; one loose capture."""
    service = StationService(station, models=models)
    nurse = service.login("nurse", PASSWORD)
    patient = service.find_or_create_patient(nurse, "P-OVERVIEW").id
    lesion = LesionService(service).create_lesion(nurse, patient, "back", "back", "left", 0.4,
                                                  0.3)
    ids = []
    for day, image in enumerate(images + ([_skin(40, 9)] if with_loose else [])):
        at = T0 + dt.timedelta(days=30 * day)
        visit = service.start_visit(nurse, patient).id
        frame = Frame(image, at.timestamp(), "cam-1", 1, "camera")
        ids.append(service.save_capture(
            nurse, visit, frame, band="white", body_site="back", access_time=at,
            lesion_id=None if day == len(images) else lesion.id).capture.id)
        service.close_visit(nurse, visit)
    service.logout(nurse)
    service.database.dispose()
    return Seeded(patient, lesion.id, ids)


def _timeline(qtbot, window, seeded: Seeded):
    timeline = window.screens["lesions"]
    timeline.patient_id = seeded.patient_id
    window.show_screen("lesions")
    qtbot.waitUntil(lambda: len(timeline.timeline) == 2, timeout=TIMEOUT)
    return timeline


def test_the_overview_photo_is_chosen_marked_by_a_click_and_cleared(
        qtbot, make_window, station, shared_models) -> None:
    seeded = _seed(station, shared_models, [_skin(60, 1), _skin(70, 2)], with_loose=True)
    first, _second, loose = seeded.captures
    window = make_window(station)
    log_in(qtbot, window, "nurse")
    timeline = _timeline(qtbot, window, seeded)
    panel = timeline.overview
    service, session = window.ctx.require_service(), window.ctx.require_session()
    lesions = LesionService(service)

    # every capture of the patient is offered, newest first, the loose one too
    qtbot.waitUntil(lambda: panel.choice.count() == 4, timeout=TIMEOUT)
    assert panel.choice.currentText() == "No overview photo"
    assert [panel.choice.itemData(i) for i in range(4)] == [None, loose, _second, first]
    assert not panel.clear_button.isEnabled() and not panel.view.clickable
    assert panel.view.image.isNull()

    # choose the loose capture and click the lesion on it
    panel.choose(loose)
    qtbot.waitUntil(lambda: panel.shown_id == loose and panel.view.clickable, timeout=TIMEOUT)
    assert panel.view.mark is None
    assert panel.view.accessibleName() == "Overview photo with the lesion marked"
    box = panel.view.image_rect()
    qtbot.mouseClick(panel.view, Qt.MouseButton.LeftButton,
                     pos=panel.view.point_of(0.25, 0.6).toPoint())
    qtbot.waitUntil(lambda: timeline.message.kind == "success", timeout=TIMEOUT)
    assert timeline.message.message == "The lesion's place is marked on the overview photo."
    stored = lesions.lesion(session, seeded.lesion_id)
    assert stored.overview_capture_id == loose
    x, y = stored.overview_point
    assert x == pytest.approx(0.25, abs=1.5 / box.width())
    assert y == pytest.approx(0.6, abs=1.5 / box.height())
    assert panel.view.mark == (x, y)  # drawn where it was stored
    assert panel.clear_button.isEnabled()
    assert timeline.lesions[0].overview_capture_id == loose  # the screen's copy follows
    with service.database.transaction() as db:
        audit = list(db.scalars(select(AuditEvent).where(
            AuditEvent.action == "lesion.overview_set")))
        assert [(row.entity_id, dict(row.detail)) for row in audit] == [
            (str(seeded.lesion_id), {"capture_id": loose})]

    # shown again with its mark when the lesion is shown again
    window.show_screen("history")
    window.show_screen("lesions")
    qtbot.waitUntil(lambda: panel.shown_id == loose and panel.view.mark is not None,
                    timeout=TIMEOUT)
    assert panel.choice.currentData() == loose
    assert panel.view.mark == (x, y)

    # clear it
    timeline.message.clear_message()
    qtbot.mouseClick(panel.clear_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: timeline.message.kind == "success", timeout=TIMEOUT)
    assert timeline.message.message == "The overview photo was removed from this lesion."
    cleared = lesions.lesion(session, seeded.lesion_id)
    assert (cleared.overview_capture_id, cleared.overview_point) == (None, None)
    assert panel.choice.currentData() is None and panel.view.image.isNull()
    assert panel.view.mark is None and not panel.clear_button.isEnabled()


def test_a_refused_comparison_is_said_in_the_korean_window_in_korean(
        qtbot, make_window, station, shared_models) -> None:
    seeded = _seed(station, shared_models, [_skin(60, 1), _skin(0, 3)], with_loose=False)
    blank = seeded.captures[1]
    window = make_window(station)
    window.ctx.set_language("ko")
    log_in(qtbot, window, "nurse")
    timeline = _timeline(qtbot, window, seeded)
    timeline.table.selectRow(0)
    timeline.table.selectRow(1)
    qtbot.mouseClick(timeline.compare_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: timeline.message.kind == "error", timeout=TIMEOUT * 3)
    assert timeline.message.message == (
        f"촬영 #{blank}에서 병변을 찾지 못했습니다. 병변이 가운데 오도록 다시 촬영하거나 "
        "다른 촬영과 비교하세요.")
    assert timeline.message.message == text("error.compare.no_lesion", "ko").format(id=blank)
    assert timeline.comparison is None and timeline.compare_button.isEnabled()
