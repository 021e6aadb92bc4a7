"""Comparing two stored captures of a lesion (issue 20): the service the timeline screen renders.

A real station database holds two captures of a drawn lesion that grew; the comparison reads
them back, takes the earlier as the reference whatever order it is asked in, and gives exactly
what segmenting, registering, measuring and comparing them directly gives. With the
dermatoscope's field of view set when both were taken, sizes read in mm from each capture's
stored pixel size (migration 0011); otherwise in pixels, with a line saying how to get mm.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import cv2
import numpy as np
import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect
from sqlalchemy import text as sql

from skinstation.auth import PermissionDeniedError, Role, Session
from skinstation.camera import Frame
from skinstation.core.i18n import TranslatableError, text
from skinstation.inference.lesion_change import compare, measure_lesion
from skinstation.inference.lesion_registration import register
from skinstation.inference.segmentation import segment_lesion
from skinstation.services.lesion_compare import compare_captures
from skinstation.services.lesions import LesionService
from skinstation.services.station import StationService
from skinstation.settings import CameraSettings, Settings
from skinstation.storage import StationStore
from skinstation.storage.captures import CaptureDetails
from skinstation.storage.database import alembic_config, current_revision, head_revision
from skinstation.storage.models import Base
from skinstation.ui.errors import describe_error
from tests.test_storage_helpers import BACKENDS, FakeClock, add_operator, open_backend

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


@contextlib.contextmanager
def _stored_pair(settings: Settings,
                 fields_of_view: tuple[float | None, float | None] = (None, None),
                 ) -> Iterator[Pair]:
    """Two captures of one lesion, 90 days apart, each taken with its field of view (mm)."""
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
        for image, at, fov in zip(images, (T0, T0 + timedelta(days=90)), fields_of_view,
                                  strict=True):
            if fov != station.settings.camera.field_of_view_mm:
                station.change_settings(admin, {"camera": {"field_of_view_mm": fov}})
            visit = station.start_visit(nurse, patient).id
            frame = Frame(image, at.timestamp(), "cam-1", 1, "camera")
            ids.append(station.save_capture(nurse, visit, frame, band="white", body_site="back",
                                            access_time=at, lesion_id=lesion.id).capture.id)
            station.close_visit(nurse, visit)
        yield Pair(station, nurse, admin, ids[0], ids[1], images[0], images[1])


@pytest.fixture()
def pair(settings: Settings) -> Iterator[Pair]:
    with _stored_pair(settings) as stored:
        yield stored


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


# -- sizes in mm (camera.field_of_view_mm) ---------------------------------------------------

UNITS_HINT = ("Sizes in pixels: set the dermatoscope's field of view in Settings to measure "
              "in mm.")


def _pixel_change(pair: Pair):
    """The change the pixel pair gives: measured without a scale, corrected by registration."""
    before_mask = segment_lesion(pair.earlier_pixels)
    after_mask = segment_lesion(pair.later_pixels)
    registration = register(pair.earlier_pixels, pair.later_pixels, before_mask, after_mask)
    return compare(measure_lesion(pair.earlier_pixels, before_mask),
                   measure_lesion(pair.later_pixels, after_mask), after_scale=registration.scale)


def test_with_the_field_of_view_set_sizes_read_in_mm_from_each_captures_stored_scale(
        settings: Settings) -> None:
    with _stored_pair(settings, (25.0, 25.0)) as pair:
        stored = [pair.station.capture_detail(pair.nurse, capture).capture
                  for capture in (pair.earlier, pair.later)]
        assert [capture.width for capture in stored] == [600, 600]
        assert [capture.mm_per_pixel for capture in stored] == [25.0 / 600, 25.0 / 600]
        # the scope swapped later: the stored captures keep the scale they were taken with
        pair.station.change_settings(pair.admin, {"camera": {"field_of_view_mm": 12.0}})
        assert pair.station.capture_detail(pair.nurse, pair.earlier).capture.mm_per_pixel \
            == 25.0 / 600

        result = compare_captures(pair.station, pair.nurse, pair.later, pair.earlier)
        assert result.units == "mm"
        scale = 25.0 / 600
        before, after = result.before_measure, result.after_measure
        assert before.area_mm2 == before.area_px * scale**2
        assert before.diameter_mm == before.diameter_px * scale
        assert after.area_mm2 == after.area_px * scale**2
        assert after.diameter_mm == after.diameter_px * scale
        # the change and its flags are those of the pixel pair (registration-corrected)
        assert result.change == _pixel_change(pair)
        assert result.change.flags == ("area",)

        rows = result.rows()
        assert [(row.key, row.label_key) for row in rows] == [
            ("area", "ui.lesions.measure.area_mm"),
            ("diameter", "ui.lesions.measure.diameter_mm"),
            ("colour", "ui.lesions.measure.colour")]
        assert (rows[0].before, rows[0].after) == (f"{before.area_px * scale**2:.1f} mm²",
                                                   f"{after.area_px * scale**2:.1f} mm²")
        assert (rows[1].before, rows[1].after) == (f"{before.diameter_px * scale:.1f} mm",
                                                   f"{after.diameter_px * scale:.1f} mm")
        assert rows[0].change == f"{result.change.area_change * 100:+.1f}%"
        assert [row.changed for row in rows] == [True, False, False]
        assert [text(row.label_key, "en") for row in rows] == ["Area", "Diameter", "Colour"]
        assert [text(row.label_key, "ko") for row in rows] == ["면적", "지름", "색"]


@pytest.mark.parametrize("fields_of_view", [(None, None), (25.0, None), (None, 25.0)])
def test_without_a_scale_for_both_sizes_stay_in_pixels_with_the_hint(
        settings: Settings, fields_of_view: tuple[float | None, float | None]) -> None:
    with _stored_pair(settings, fields_of_view) as pair:
        scales = [pair.station.capture_detail(pair.nurse, capture).capture.mm_per_pixel
                  for capture in (pair.earlier, pair.later)]
        assert scales == [None if fov is None else fov / 600 for fov in fields_of_view]
        result = compare_captures(pair.station, pair.nurse, pair.earlier, pair.later)
        assert result.units == "px"
        rows = result.rows()
        before, after = result.before_measure, result.after_measure
        assert [row.label_key for row in rows] == [
            "ui.lesions.measure.area", "ui.lesions.measure.diameter", "ui.lesions.measure.colour"]
        assert (rows[0].before, rows[0].after) == (str(before.area_px), str(after.area_px))
        assert (rows[1].before, rows[1].after) == (f"{before.diameter_px:.1f}",
                                                   f"{after.diameter_px:.1f}")
        assert result.change == _pixel_change(pair)
        assert text("ui.lesions.units_px", "en") == UNITS_HINT
        assert text("ui.lesions.units_px", "ko") == (
            "크기는 픽셀 단위입니다. mm로 측정하려면 설정에서 더모스코프의 시야 폭을 입력하세요.")


def test_the_field_of_view_setting_is_checked(pair: Pair) -> None:
    assert CameraSettings().field_of_view_mm is None
    assert CameraSettings(field_of_view_mm=25).field_of_view_mm == 25.0  # TOML integers too
    message = ("camera.field_of_view_mm must be the dermatoscope's field-of-view width in mm, "
               "above 0 and at most 200 (e.g. 25), or not set when not known; got {}")
    for wrong in (0, -3.0, 250.0, float("nan"), "25"):
        with pytest.raises(ValueError) as refused:
            CameraSettings(field_of_view_mm=wrong)  # type: ignore[arg-type]
        assert str(refused.value) == message.format(repr(wrong))
    config = pair.station.settings.home / "settings.toml"
    config.write_text("[camera]\nfield_of_view_mm = 250\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"at most 200 .*; got 250$"):
        Settings.load(env={}, config_file=config)
    config.write_text("[camera]\nfield_of_view_mm = 25\n", encoding="utf-8")
    assert Settings.load(env={}, config_file=config).camera.field_of_view_mm == 25.0
    # the settings screen's path: refused before anything is written or used
    with pytest.raises(ValueError, match=r"; got 0\.0$"):
        pair.station.change_settings(pair.admin, {"camera": {"field_of_view_mm": 0.0}})
    assert pair.station.settings.camera.field_of_view_mm is None
    assert config.read_text(encoding="utf-8") == "[camera]\nfield_of_view_mm = 25\n"
    pair.station.change_settings(pair.admin, {"camera": {"field_of_view_mm": 18.5}})
    assert Settings.load(env={}, config_file=config).camera.field_of_view_mm == 18.5
    pair.station.change_settings(pair.admin, {"camera": {"field_of_view_mm": None}})
    assert pair.station.settings.camera.field_of_view_mm is None
    assert Settings.load(env={}, config_file=config).camera.field_of_view_mm is None


@pytest.mark.parametrize("backend", BACKENDS)
def test_migration_0011_adds_the_scale_column_both_ways(settings: Settings,
                                                        backend: str) -> None:
    with open_backend(settings, backend) as database:
        assert current_revision(database.engine) == head_revision() == "0011"
        store = StationStore(database, clock=FakeClock(T0))
        nurse = add_operator(database, "nurse", "staff")
        visit = store.open_visit(store.create_patient("P-0001", actor_id=nurse).id,
                                 operator_id=nurse)
        pixels = np.zeros((6, 8, 3), np.uint8)
        saved = [store.save_capture(visit.id, pixels, band="white", body_site="back",
                                    device_id="cam-1", operator_id=nurse, access_time=T0,
                                    capture_time=T0, field_of_view_mm=fov).uid
                 for fov in (20.0, None)]
        with pytest.raises(ValueError, match=r"^field_of_view_mm must be a positive width in "
                                             r"mm, got -1\.0$"):
            store.save_capture(visit.id, pixels, band="white", body_site="back",
                               device_id="cam-1", operator_id=nurse, access_time=T0,
                               capture_time=T0, field_of_view_mm=-1.0)
        with database.engine.connect() as connection:  # 20 mm over 8 pixels; nothing else
            assert connection.execute(sql("SELECT uid, mm_per_pixel FROM captures ORDER BY id")
                                      ).all() == [(saved[0], 2.5), (saved[1], None)]
        config = alembic_config(database.engine)
        command.downgrade(config, "0010")
        with database.engine.connect() as connection:
            columns = {column["name"] for column in inspect(connection).get_columns("captures")}
            assert "mm_per_pixel" not in columns and "lesion_id" in columns
            assert connection.scalars(sql("SELECT uid FROM captures ORDER BY id")).all() == saved
        command.upgrade(config, "head")
        with database.engine.connect() as connection:
            column = next(column for column in inspect(connection).get_columns("captures")
                          if column["name"] == "mm_per_pixel")
            assert column["nullable"] is True
            # captures saved before the column keep no scale
            assert connection.execute(sql("SELECT uid, mm_per_pixel FROM captures ORDER BY id")
                                      ).all() == [(saved[0], None), (saved[1], None)]
            assert compare_metadata(MigrationContext.configure(
                connection, opts={"compare_type": True}), Base.metadata) == []


@pytest.mark.parametrize("bad", [0, -25.0, float("nan"), float("inf"), "25", True])
def test_a_bad_field_of_view_is_refused_before_anything_is_stored(bad) -> None:
    with pytest.raises(ValueError, match=r"^field_of_view_mm must be a positive width in mm, "
                                         r"got "):
        at = datetime(2026, 12, 4, tzinfo=UTC)
        CaptureDetails.checked(band="white", body_site="back", device_id="scope-1",
                               operator_id=1, access_time=at, capture_time=at,
                               field_of_view_mm=bad)
