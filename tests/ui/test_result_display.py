"""The result as a dermatologist reads it (issue 19, point 13): words and colour agree with the
referral flag and the cancer probabilities, the referral threshold is marked, percentages are
honest, the quality text agrees with the decision, the heatmap has a legend and an opacity
control; plus the label list from the model's taxonomy and the wheel guard."""

from __future__ import annotations

import numpy as np
import pytest
from PySide6.QtCore import QPoint, QPointF, Qt
from PySide6.QtGui import QWheelEvent
from PySide6.QtWidgets import QApplication, QWidget

from skinstation.camera import QualityReport
from skinstation.core.i18n import text
from skinstation.inference.classifier import Prediction, guidance_key
from skinstation.inference.decision import decide
from skinstation.inference.taxonomy import load_taxonomy
from skinstation.services.result_text import percent
from skinstation.ui.widgets.prediction_panel import PredictionPanel, PredictionView
from tests.ui.helpers import TIMEOUT, log_in, open_visit, wait_for_preview

THRESHOLD = 0.1767559763427322  # the bundled default model's referral threshold


def prediction(threshold: float | None = THRESHOLD, **class_probs: float) -> Prediction:
    """What the classifier returns for these class probabilities (its own rule and flag)."""
    taxonomy = load_taxonomy()
    groups = {g: sum(p for c, p in class_probs.items() if taxonomy.group_of[c] == g)
              for g in taxonomy.groups}
    decision = decide(groups)
    referral = threshold is not None and groups["skin_cancer"] >= threshold
    return Prediction(dict(class_probs), groups, decision, referral, threshold, True, 0.1,
                      max(class_probs, key=class_probs.__getitem__),
                      guidance_key(decision, referral), "test-model", 0.01)


MELANOMA_12 = dict(akiec=0.03, bcc=0.03, bkl=0.06, df=0.03, mel=0.12, nv=0.70, vasc=0.03)
REFERRED = dict(akiec=0.02, bcc=0.05, bkl=0.05, df=0.04, mel=0.15, nv=0.65, vasc=0.04)
CLEAR = dict(akiec=0.01, bcc=0.01, bkl=0.03, df=0.02, mel=0.02, nv=0.90, vasc=0.01)
CERTAIN = dict(akiec=0.0001, bcc=0.0001, bkl=0.0001, df=0.0001, mel=0.0001, nv=0.9994,
               vasc=0.0001)


def tr(key: str, **values: object) -> str:
    value = text(key, "en")
    return value.format(**values) if values else value


@pytest.fixture()
def panel(qtbot):
    widget = PredictionPanel(tr)
    qtbot.addWidget(widget)
    widget.show()
    return widget


# -- the wording agrees with the cancer probabilities and the referral flag --------------------


def test_a_12_percent_melanoma_is_not_a_green_no_urgent_action(panel):
    shown = prediction(**MELANOMA_12)
    assert shown.decision == "benign" and not shown.referral  # the rule and flag unchanged
    panel.show_prediction(PredictionView.of(shown))
    banner = panel.banner
    assert banner.decision == "benign" and banner.title.text() == "Likely benign"
    assert banner.style_key == "indeterminate" and banner.icon.shape == "diamond"  # not green
    assert not banner.referral.isVisible() and banner.detail.isVisible()  # no referral flag
    assert banner.detail.text() == (
        "Skin cancer not ruled out: Melanoma (mel) 12%, below the referral threshold (18%) "
        "but not negligible.")
    assert panel.guidance.text() == text("guidance.benign_caution")
    assert "no urgent action" not in panel.guidance.text().lower()


def test_a_safety_referral_governs_colour_shape_and_guidance(panel):
    shown = prediction(**REFERRED)
    assert shown.decision == "benign" and shown.referral
    panel.show_prediction(PredictionView.of(shown))
    banner = panel.banner
    assert banner.title.text() == "Likely benign"  # the rule's decision stays visible
    assert banner.style_key == "skin_cancer" and banner.icon.shape == "triangle"
    assert banner.referral.text() == (
        "▲ Safety referral: possible skin cancer — skin cancer 20%, at or above the referral "
        "threshold (18%).")
    assert not banner.detail.isVisible()
    assert panel.guidance.text() == text("guidance.referral")


def test_a_clear_benign_result_stays_green(panel):
    panel.show_prediction(PredictionView.of(prediction(**CLEAR)))
    assert panel.banner.style_key == "benign" and panel.banner.icon.shape == "circle"
    assert not panel.banner.referral.isVisible() and not panel.banner.detail.isVisible()
    assert panel.guidance.text() == text("guidance.benign")


def test_the_referral_threshold_is_marked_on_the_cancer_bar(panel):
    panel.show_prediction(PredictionView.of(prediction(**MELANOMA_12)))
    assert panel.groups.markers == {"Skin cancer": pytest.approx(THRESHOLD)}
    assert panel.threshold_note.isVisible()
    assert panel.threshold_note.text() == (
        "The black line on the skin-cancer bar is the referral threshold: at or above 18%, "
        "the case is referred.")
    # a stored prediction without its threshold: no mark, no note
    panel.show_prediction(PredictionView.of(prediction(threshold=None, **MELANOMA_12)))
    assert panel.groups.markers == {} and not panel.threshold_note.isVisible()


def test_percentages_are_rounded_honestly(panel):
    assert [percent(p) for p in (1.0, 0.9994, 0.995, 0.99, 0.125, 0.01, 0.004, 0.0)] == [
        "100%", ">99%", ">99%", "99%", "13%", "1%", "<1%", "0%"]
    panel.show_prediction(PredictionView.of(prediction(**CERTAIN)))
    texts = panel.classes.texts()
    assert texts["Melanocytic nevus (mole) (nv)"] == ">99%"
    assert texts["Melanoma (mel)"] == "<1%"
    assert panel.groups.texts() == {"Skin cancer": "<1%", "Other skin disease": "<1%",
                                    "Benign": ">99%"}
    for name in (panel.classes.accessibleName(), panel.groups.accessibleName()):
        assert "100%" not in name and " 0%" not in name


# -- the result screen -------------------------------------------------------------------------


def wheel(widget: QWidget, steps: int) -> None:
    centre = QPointF(widget.rect().center())
    event = QWheelEvent(centre, QPointF(widget.mapToGlobal(widget.rect().center())), QPoint(),
                        QPoint(0, 120 * steps), Qt.MouseButton.NoButton,
                        Qt.KeyboardModifier.NoModifier, Qt.ScrollPhase.NoScrollPhase, False)
    QApplication.sendEvent(widget, event)


@pytest.fixture()
def shown(qtbot, make_window, station, monkeypatch):
    """Capture a real frame and show ``prediction`` for it (the quality check passes)."""
    window = make_window(station)
    window.resize(1024, 700)
    log_in(qtbot, window, "nurse")
    open_visit(qtbot, window, "P-SHOW", site="back")
    window.show_screen("capture")
    wait_for_preview(qtbot, window)
    capture, result = window.capture_screen, window.result_screen
    capture.confirm_replace = lambda: "discard"
    service = window.ctx.require_service()
    monkeypatch.setattr(service, "check_quality", lambda pixels: QualityReport(()))

    def show(model_output: Prediction):
        monkeypatch.setattr(service, "classify", lambda pixels: model_output)
        window.show_screen("capture")
        qtbot.waitUntil(capture.capture_button.isEnabled, timeout=TIMEOUT)
        previous = result.taken
        qtbot.mouseClick(capture.capture_button, Qt.MouseButton.LeftButton)
        qtbot.waitUntil(lambda: result.taken is not previous and result.outcome is not None,
                        timeout=TIMEOUT)
        return result

    show.window = window
    show.service = service
    return show


def test_not_assessable_says_why_not_image_quality_is_good(shown):
    model_output = Prediction({}, {}, "not_assessable", False, THRESHOLD, False, 9.0, "",
                              "guidance.not_assessable", "test-model", 0.01,
                              "unlike the skin images the model was trained on (score 9 above "
                              "0.361)")
    result = shown(model_output)
    assert result.panel.banner.title.text() == "Not assessable — retake or refer"
    assert result.quality.text() == (
        "Capture quality passed, but the model could not assess this image: it is unlike the "
        "skin close-ups the model was trained on.")
    assert text("ui.quality.good") not in result.quality.text()
    shown.window.ctx.set_language("ko")
    assert result.quality.text() == (
        "촬영 품질 검사는 통과했지만 모델이 이 영상을 평가할 수 없습니다: 모델이 학습한 피부 근접 "
        "영상과 다릅니다.")


def test_result_screen_marks_threshold_and_words_a_notable_melanoma(shown, qtbot):
    result = shown(prediction(**MELANOMA_12))
    assert result.panel.banner.icon.shape == "diamond"
    assert result.panel.groups.markers == {"Skin cancer": pytest.approx(THRESHOLD)}
    assert result.quality.text() == text("ui.quality.good")
    assert result.band_label.text() == "Light: White"
    # nothing is clipped at 1024 × 700
    window = shown.window
    assert (window.width(), window.height()) == (1024, 700)
    labels = [result.band_label, result.quality, result.panel.guidance,
              result.panel.banner.title, result.panel.banner.detail,
              result.panel.threshold_note]
    assert all(label.isVisible() and label.wordWrap() for label in labels)

    def fits() -> bool:
        return all(label.height() >= label.heightForWidth(label.width()) for label in labels)

    qtbot.waitUntil(fits, timeout=TIMEOUT)  # once the layout has settled
    right = result.findChild(QWidget, "resultScroll")
    assert right.geometry().right() <= result.width()  # the right column is not cut off


def test_heatmap_has_a_legend_and_an_opacity_slider(shown, qtbot):
    result = shown(prediction(**CLEAR))
    controls = result.heatmap_controls
    assert not controls.isVisible()
    qtbot.mouseClick(result.heatmap_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: result.explanation is not None, timeout=TIMEOUT)
    assert controls.isVisible() and controls.scale.isVisible()
    code = result.explanation.target_class
    assert controls.legend.text() == (
        f"Red: the regions that raised the score of {text(f'class.{code}')} ({code}) most; "
        "blue: little or no effect.")
    assert (controls.low.text(), controls.high.text()) == ("Low", "High")
    shown.window.ctx.set_language("ko")
    assert controls.legend.text() == text("ui.result.heatmap_legend", "ko").format(
        name=f"{text(f'class.{code}', 'ko')} ({code})")
    assert controls.opacity_title.text() == "히트맵 불투명도"
    shown.window.ctx.set_language("en")
    assert controls.slider.value() == 45
    assert np.array_equal(result.heatmap_image(), result.explanation.overlay(0.45))
    controls.slider.setValue(80)
    expected = result.explanation.overlay(0.80)
    assert np.array_equal(result.heatmap_image(), expected)
    assert (result.image.image.width(), result.image.image.height()) == expected.shape[1::-1]
    controls.slider.setValue(0)  # fully transparent: the model's own input image
    assert np.array_equal(result.heatmap_image(), result.explanation.prepared)
    qtbot.mouseClick(result.heatmap_button, Qt.MouseButton.LeftButton)  # off again
    assert not controls.isVisible()


def test_label_choices_come_from_the_model_and_ignore_the_wheel(shown, monkeypatch):
    service = shown.service
    monkeypatch.setattr(service.models, "class_codes", lambda: ("mel", "nv", "sek"))
    result = shown(prediction(**CLEAR))
    combo = result.label_combo
    assert [combo.itemData(i) for i in range(combo.count())] == ["", "mel", "nv", "sek"]
    assert combo.itemText(3) == "sek (sek)"  # a class without a translation keeps its code
    assert combo.property("wheelGuarded") and result.heatmap_controls.slider.property(
        "wheelGuarded")
    result.save_button.setFocus()
    wheel(combo, -1)
    wheel(combo, -1)
    assert combo.currentIndex() == 0  # an unfocused combo box ignores the wheel
    combo.setFocus()
    wheel(combo, -1)
    assert combo.currentIndex() == 1  # a focused one still takes it
