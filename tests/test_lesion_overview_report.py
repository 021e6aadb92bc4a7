"""A lesion's overview photo on its referral report, and the lesion refusals in Korean (issue 20).

Real parts: the station (SQLite, the tiny model, HAM10000 frames through the simulated
dermatoscope), the report fonts, pypdf reading the page's text and images back.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import pytest
from pypdf import PdfReader

from skinstation.camera import SimulatedDermatoscope
from skinstation.core.i18n import TranslatableError
from skinstation.services.lesions import LesionService
from skinstation.services.report import OVERVIEW_SIDE, lesion_report
from skinstation.storage.lesions import LesionError
from tests.export_helpers import PASSWORD, make_captures, stored_pixels

RED = np.array([209, 36, 47])


@pytest.fixture()
def made(settings, tiny_model, ham_dir):
    made = make_captures(settings.replace(model_path=tiny_model), ham_dir, body_site="back")
    yield made
    made.service.database.dispose()


def _words(path: Path) -> tuple[PdfReader, str]:
    reader = PdfReader(path)
    return reader, " ".join(" ".join(page.extract_text() for page in reader.pages).split())


def test_the_lesion_report_shows_the_overview_photo_with_the_lesion_circled(
        made, ham_dir: Path, tmp_path: Path) -> None:
    service = made.service
    nurse = service.login("nurse", PASSWORD)
    close = made.captures[0].capture
    visit = service.visit(nurse, close.visit_id)
    lesions = LesionService(service)
    lesion = lesions.create_lesion(nurse, visit.patient_id, "back", "back", "left", 0.4, 0.3)
    lesions.assign_capture(nurse, close.id, lesion.id)
    with SimulatedDermatoscope(ham_dir / "images") as source:
        source.read()
        frame = source.read()  # another picture: the overview of the back
    overview = service.save_capture(nurse, visit.id, frame, band="white", body_site="back",
                                    access_time=dt.datetime.now(dt.UTC)).capture

    _, before = _words(lesion_report(service, nurse, lesion.id, tmp_path / "before.pdf", "en"))
    assert "Overview photo" not in before
    lesions.set_overview(nurse, lesion.id, overview.id, 0.25, 0.6)
    reader, words = _words(lesion_report(service, nurse, lesion.id, tmp_path / "after.pdf", "en"))
    assert len(reader.pages) == 1
    assert f"Overview photo (capture #{overview.id}): the lesion is circled" in words

    # the photo is on the page, the ring drawn around the marked point
    height, width = frame.pixels.shape[:2]
    scale = min(1.0, OVERVIEW_SIDE / max(height, width))
    size = (round(width * scale), round(height * scale))
    detailed = stored_pixels(service, close.id)  # the detailed capture is a picture too
    (photo,) = [pixels for pixels in (np.asarray(image.image.convert("RGB"))
                                      for image in reader.pages[0].images)
                if pixels.shape[1::-1] == size and not np.array_equal(pixels, detailed)]
    centre = (int(0.25 * size[0]), int(0.6 * size[1]))
    radius = max(6, round(min(size) * 0.06))
    ring = photo[centre[1] - radius, centre[0]].astype(int)
    assert np.abs(ring - RED).max() < 40, ring
    assert np.abs(photo[centre[1], centre[0]].astype(int) - RED).max() > 40  # not filled in

    _, korean = _words(lesion_report(service, nurse, lesion.id, tmp_path / "ko.pdf", "ko"))
    assert f"전체사진(촬영#{overview.id}):병변을원으로표시" in "".join(korean.split())


def test_lesion_refusals_are_texts_of_the_catalogue(made) -> None:
    service = made.service
    nurse = service.login("nurse", PASSWORD)
    capture = made.captures[0].capture
    patient = service.visit(nurse, capture.visit_id).patient_id
    lesions = LesionService(service)
    lesion = lesions.create_lesion(nurse, patient, "back", "back", "left", 0.4, 0.3)
    with pytest.raises(LesionError, match=r"^Mark the lesion's point \(x and y\) on the "
                                          r"overview photo\.$") as refused:
        lesions.set_overview(nurse, lesion.id, capture.id)
    assert isinstance(refused.value, ValueError | TranslatableError)
    assert refused.value.translated("ko") == "전체 사진에서 병변 위치(x, y)를 표시하세요."
    with pytest.raises(LesionError, match=r"^x must be between 0 and 1; got 1\.5$") as refused:
        lesions.set_overview(nurse, lesion.id, capture.id, 1.5, 0.5)
    assert refused.value.translated("ko") == "x 값은 0과 1 사이여야 합니다 (입력값: 1.5)"
    assert lesions.lesion(nurse, lesion.id).overview_capture_id is None
