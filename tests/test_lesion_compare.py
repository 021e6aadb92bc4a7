"""Comparing two stored captures of a lesion (issue 20): the service the timeline screen renders.

A real station database holds two captures of a drawn lesion that grew; the comparison reads
them back, takes the earlier as the reference whatever order it is asked in, and gives exactly
what segmenting, registering, measuring and comparing them directly gives.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import cv2
import numpy as np
import pytest

from skinstation.auth import PermissionDeniedError, Role, Session
from skinstation.camera import Frame
from skinstation.core.i18n import TranslatableError, text
from skinstation.inference.lesion_change import compare, measure_lesion
from skinstation.inference.lesion_registration import register
from skinstation.inference.segmentation import segment_lesion
from skinstation.services.lesion_compare import compare_captures
from skinstation.services.lesions import LesionService
from skinstation.services.station import StationService
from skinstation.settings import Settings
from skinstation.ui.errors import describe_error
from tests.test_storage_helpers import FakeClock, open_backend

PASSWORD = "correct horse battery"
T0 = datetime(2026, 3, 14, 10, 0, tzinfo=UTC)


def _lesion_image(radius: int, centre: tuple[int, int], seed: int) -> np.ndarray:
    """Skin with a little texture and a dark round lesion (RGB uint8, 450×600)."""
    rng = np.random.default_rng(seed)
    image = np.empty((450, 600, 3), np.uint8)
    image[:] = (205, 160, 140)
    noise = rng.normal(0, 6, image.shape)
    image = np.clip(image + noise, 0, 255).astype(np.uint8)
    cv2.circle(image, centre, radius, (95, 60, 45), -1)
    return image


def _tr(language: str):
    """The window's translator in ``language``."""
    def tr(key: str, **values: object) -> str:
        return text(key, language).format(**values)
    return tr


@dataclass
class Pair:
    station: StationService
    nurse: Session
    admin: Session
    earlier: int
    later: int
    earlier_pixels: np.ndarray
    later_pixels: np.ndarray


@pytest.fixture()
def pair(settings: Settings) -> Iterator[Pair]:
    with open_backend(settings, "sqlite") as database:
        station = StationService(database.settings, database=database, clock=FakeClock(T0))
        station.create_first_admin("admin", "Admin", PASSWORD)
        admin = station.login("admin", PASSWORD)
        station.create_operator(admin, "nurse", "Nurse", Role.STAFF, PASSWORD)
        nurse = station.login("nurse", PASSWORD)
        patient = station.find_or_create_patient(nurse, "P-0001").id
        lesion = LesionService(station).create_lesion(nurse, patient, "back", "back", "left",
                                                      0.4, 0.3)
        images = (_lesion_image(60, (300, 225), 1), _lesion_image(80, (310, 230), 2))
        ids = []
        for image, at in zip(images, (T0, T0 + timedelta(days=90)), strict=True):
            visit = station.start_visit(nurse, patient).id
            frame = Frame(image, at.timestamp(), "cam-1", 1, "camera")
            ids.append(station.save_capture(nurse, visit, frame, band="white", body_site="back",
                                            access_time=at, lesion_id=lesion.id).capture.id)
            station.close_visit(nurse, visit)
        yield Pair(station, nurse, admin, ids[0], ids[1], images[0], images[1])


def test_the_comparison_is_the_measured_change_of_the_stored_pair(pair: Pair) -> None:
    result = compare_captures(pair.station, pair.nurse, pair.later, pair.earlier)  # any order
    assert (result.before_id, result.after_id) == (pair.earlier, pair.later)
    assert result.before_time < result.after_time
    assert np.array_equal(result.before_pixels, pair.earlier_pixels)

    before_mask = segment_lesion(pair.earlier_pixels)
    after_mask = segment_lesion(pair.later_pixels)
    registration = register(pair.earlier_pixels, pair.later_pixels, before_mask, after_mask)
    before = measure_lesion(pair.earlier_pixels, before_mask)
    after = measure_lesion(pair.later_pixels, after_mask)
    assert result.before_measure == before and result.after_measure == after
    assert result.change == compare(before, after, after_scale=registration.scale)

    # the drawn discs grew from radius 60 to 80 pixels (area × 1.78): flagged as changed
    assert result.registration.scale == pytest.approx(1.0, abs=0.02)
    assert result.change.area_change == pytest.approx(
        after.area_px * registration.scale**2 / before.area_px - 1)
    assert 0.4 < result.change.area_change < 0.9
    assert result.change.area_changed and not result.change.colour_changed
    assert result.change.flags == ("area",)  # +27% diameter stays under its threshold

    rows = result.rows()
    assert [row.key for row in rows] == ["area", "diameter", "colour"]
    assert rows[0].before == str(before.area_px) and rows[0].after == str(after.area_px)
    assert rows[0].change == f"{result.change.area_change * 100:+.1f}%"
    assert rows[1].before == f"{before.diameter_px:.1f}"
    assert rows[2].change == f"ΔE {result.change.colour_delta_e:.1f}"
    assert [row.changed for row in rows] == [True, False, False]

    assert result.side_by_side().shape == (450, 600 * 2 + 4, 3)
    assert result.overlay(0.3).shape == pair.earlier_pixels.shape
    assert np.array_equal(result.overlay(0.0)[0, 0], pair.earlier_pixels[0, 0])


def test_the_same_capture_twice_and_admins_are_refused(pair: Pair) -> None:
    with pytest.raises(ValueError, match=r"^Choose two different captures to compare\.$") \
            as refused:
        compare_captures(pair.station, pair.nurse, pair.earlier, pair.earlier)
    assert isinstance(refused.value, TranslatableError)
    assert describe_error(refused.value, _tr("ko")) == "서로 다른 촬영 두 장을 골라 비교하세요."
    with pytest.raises(PermissionDeniedError):
        compare_captures(pair.station, pair.admin, pair.earlier, pair.later)


def test_a_capture_without_a_lesion_is_refused_with_a_clear_message(pair: Pair) -> None:
    """Plain skin: no "+∞, changed" against nothing — the operator is told what is wrong."""
    visit = pair.station.start_visit(pair.nurse, pair.station.find_patient(
        pair.nurse, "P-0001").id).id
    skin = _lesion_image(0, (300, 225), 3)
    skin[:] = skin.mean(axis=(0, 1)).astype(np.uint8)
    at = T0 + timedelta(days=120)
    frame = Frame(skin, at.timestamp(), "cam-1", 1, "camera")
    blank = pair.station.save_capture(pair.nurse, visit, frame, band="white", body_site="back",
                                      access_time=at).capture.id
    assert not segment_lesion(skin).any()
    with pytest.raises(ValueError, match=rf"^No lesion found in capture #{blank}: retake it") \
            as refused:
        compare_captures(pair.station, pair.nurse, pair.earlier, blank)
    # the window shows it in its own language
    assert refused.value.translated("ko") == (
        f"촬영 #{blank}에서 병변을 찾지 못했습니다. 병변이 가운데 오도록 다시 촬영하거나 "
        "다른 촬영과 비교하세요.")
    assert describe_error(refused.value, _tr("ko")) == refused.value.translated("ko")
    assert describe_error(refused.value, _tr("en")) == (
        f"No lesion found in capture #{blank}: retake it centred on the lesion, or compare "
        "another capture.")
