"""Painted texts wrap instead of being cut off, the header holds its buttons, and the capture
screen words the light in the window's language (issue 19, point 12)."""

from __future__ import annotations

import os
import re
from pathlib import Path

from PySide6.QtCore import QSize, Qt
from PySide6.QtWidgets import QApplication

from skinstation.camera import IlluminatorError
from skinstation.core.i18n import text
from skinstation.ui.camera_worker import SourceInfo
from skinstation.ui.widgets.decision import ProbabilityBars
from skinstation.ui.widgets.image_view import ImageView
from tests.ui.helpers import TIMEOUT, log_in, open_visit, wait_for_preview
from tests.ui.layout_check import clipped_widgets

HANGUL = re.compile(r"[\uac00-\ud7a3]")
AKIEC_KO = f"{text('class.akiec', 'ko')} (akiec)"
AKIEC_EN = f"{text('class.akiec', 'en')} (akiec)"


def _bars(qtbot, width: int, items) -> ProbabilityBars:
    bars = ProbabilityBars("testBars")
    qtbot.addWidget(bars)
    font = bars.font()
    font.setPixelSize(15)  # the station stylesheet's size
    bars.setFont(font)
    bars.set_items(items)
    bars.resize(width, bars.height())
    bars.show()
    qtbot.waitExposed(bars)
    QApplication.processEvents()
    assert bars.width() == width
    return bars


def test_long_class_names_wrap_onto_a_second_line_instead_of_being_cut(qtbot) -> None:
    items = [(AKIEC_EN, 0.47), (AKIEC_KO, 0.42), ("Dermatofibroma (df)", 0.05)]
    bars = _bars(qtbot, 360, items)
    assert bars.elided_texts() == []
    lines = bars.row_lines()
    for row, label in zip(lines[:2], (AKIEC_EN, AKIEC_KO), strict=True):
        assert 2 <= len(row) <= ProbabilityBars.MAX_LABEL_LINES
        assert "".join(row).replace(" ", "") == label.replace(" ", "")  # every word is shown
    assert lines[2] == ["Dermatofibroma (df)"]
    metrics = bars.fontMetrics()
    label_width = int(360 * 0.55) - 8
    assert all(metrics.horizontalAdvance(line) <= label_width for row in lines for line in row)
    # the wrapped rows are taller; a one-line row keeps ROW_HEIGHT
    assert bars.height() > 3 * ProbabilityBars.ROW_HEIGHT + 8
    assert bars.texts() == {AKIEC_EN: "47%", AKIEC_KO: "42%", "Dermatofibroma (df)": "5%"}


def test_short_labels_keep_one_row_height_per_bar(qtbot) -> None:
    bars = _bars(qtbot, 440, [("Skin cancer", 0.3), ("Benign", 0.7)])
    assert bars.row_lines() == [["Skin cancer"], ["Benign"]]
    assert bars.height() == 2 * ProbabilityBars.ROW_HEIGHT + 8
    assert bars.elided_texts() == []


def test_a_label_too_long_even_for_three_lines_is_reported(qtbot) -> None:
    endless = " ".join(["Actinic keratosis"] * 12)
    bars = _bars(qtbot, 300, [(endless, 0.5)])
    assert bars.elided_texts() == [endless]
    assert len(bars.row_lines()[0]) == ProbabilityBars.MAX_LABEL_LINES
    assert bars.row_lines()[0][-1].endswith("…")


def test_band_thumbnail_captions_wrap_to_fit(qtbot) -> None:
    view = ImageView("band_nir_850", QSize(64, 48))
    qtbot.addWidget(view)
    view.resize(64, 64)
    view.set_caption(text("ui.band.nir_850", "ko"))  # 근적외선 850 nm: two lines in 64 px
    assert view.elided_texts() == []
    view.set_caption("Cross-polarised Near-IR 850 nm (sequence)")
    assert view.elided_texts() == ["Cross-polarised Near-IR 850 nm (sequence)"]
    view.set_caption("")
    assert view.elided_texts() == []


def test_header_buttons_fit_inside_the_header_at_1024x700(qtbot, make_window, station) -> None:
    window = make_window(station)
    window.ctx.set_language("ko")
    log_in(qtbot, window, "nurse")
    window.resize(QSize(1024, 700))
    qtbot.waitUntil(lambda: window.size() == QSize(1024, 700), timeout=TIMEOUT)
    QApplication.processEvents()
    header = window.header
    for button in (window.password_button, window.lock_button, window.logout_button):
        assert button.geometry().bottom() < header.height(), button.objectName()
        assert button.height() >= 44  # still a touch target


def test_the_capture_screen_words_the_light_in_korean(qtbot, make_window, station) -> None:
    window = make_window(station)
    window.ctx.set_language("ko")
    capture = window.capture_screen
    capture.source = SourceInfo("simulator:x", "simulator", "", (), "manual light (no controller)",
                                "", False, light_text=("light.manual", {}))
    capture._show_source()
    assert "조명: 수동 조명 (제어기 없음)" in capture.source_status.text()
    failure = IlluminatorError("error.light.not_open", port="/dev/ttyACM0")
    capture.source = SourceInfo("simulator:x", "simulator", "", (), "", str(failure), False,
                                light_failure=failure)
    capture._show_source()
    shown = capture.source_status.text()
    assert "/dev/ttyACM0의 LED 조명 제어기가 열려 있지 않습니다" in shown
    assert "is not open" not in shown and HANGUL.search(shown)


def test_a_sequence_result_holds_in_korean_at_1024x700(qtbot, make_window, station) -> None:
    """The band thumbnails' captions (painted) and the rest of the result screen fit."""
    window = make_window(station)
    window.ctx.set_language("ko")
    log_in(qtbot, window, "nurse")
    open_visit(qtbot, window, "LAYOUT-SEQ")
    window.show_screen("capture")
    wait_for_preview(qtbot, window)
    capture, result = window.capture_screen, window.result_screen
    qtbot.waitUntil(capture.sequence_button.isEnabled, timeout=TIMEOUT)
    qtbot.mouseClick(capture.sequence_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: result.outcome is not None, timeout=TIMEOUT)
    window.show_screen("result")
    window.resize(QSize(1024, 700))
    qtbot.waitUntil(lambda: window.size() == QSize(1024, 700), timeout=TIMEOUT)
    for _ in range(3):
        QApplication.processEvents()
        qtbot.wait(20)
    assert len(result.band_views) == 7
    assert [view.elided_texts() for view in result.band_views] == [[]] * 7
    assert [str(problem) for problem in clipped_widgets(window)] == []
    folder = os.environ.get("SKINSTATION_SCREENSHOTS_DIR")
    if folder:
        window.grab().save(str(Path(folder) / "ko-1024x700-nurse-result-sequence.png"))
