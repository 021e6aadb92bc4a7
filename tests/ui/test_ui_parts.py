"""Parts of the station UI: result wording (safety rules), accessibility, texts, error
messages, the PySide6 workaround, and ``python -m skinstation``."""

from __future__ import annotations

import ast
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from PySide6.QtWidgets import (
    QAbstractButton,
    QAbstractItemView,
    QAbstractSpinBox,
    QComboBox,
    QHeaderView,
    QLineEdit,
    QWidget,
)
from sqlalchemy.exc import OperationalError

from skinstation.auth import InvalidCredentialsError
from skinstation.camera import CameraDisconnectedError
from skinstation.core.i18n import keys, text
from skinstation.inference.classifier import Prediction, guidance_key
from skinstation.inference.model_file import ModelFileError
from skinstation.services.station import SyntheticFrameError
from skinstation.ui.errors import describe_error
from skinstation.ui.widgets.prediction_panel import PredictionPanel, PredictionView
from tests.ui.helpers import log_in

UI_DIR = Path(__file__).resolve().parents[2] / "skinstation" / "ui"


def _prediction(decision: str, referral: bool, groups: dict[str, float]) -> Prediction:
    classes = {"akiec": 0.05, "bcc": groups.get("skin_cancer", 0) / 2, "bkl": 0.05,
               "df": 0.05, "mel": groups.get("skin_cancer", 0) / 2, "nv": 0.3, "vasc": 0.05}
    return Prediction(classes, groups, decision, referral, 0.3, True, 0.1, "nv",
                      guidance_key(decision, referral), "test-model", 0.1)


def _tr(key: str, **values: object) -> str:
    value = text(key, "en")
    return value.format(**values) if values else value


# -- the result's wording -------------------------------------------------------------------


def test_referral_flag_is_shown_in_words_and_guidance_is_the_cautious_one(qtbot):
    panel = PredictionPanel(_tr)
    qtbot.addWidget(panel)
    panel.show()
    groups = {"skin_cancer": 0.35, "other_disease": 0.05, "benign": 0.60}
    panel.show_prediction(PredictionView.of(_prediction("benign", True, groups)))
    assert panel.banner.title.text() == "Likely benign"
    assert panel.banner.referral.isVisible()
    assert text("referral.flag") in panel.banner.referral.text()
    assert panel.guidance.text() == text("guidance.referral")  # not the benign guidance
    assert text("referral.flag") in panel.banner.accessibleName()
    assert panel.groups.values()["Skin cancer"] == pytest.approx(0.35)
    assert panel.notice.text() == text("notice")


def test_decisions_have_a_shape_and_words_not_only_colour(qtbot):
    panel = PredictionPanel(_tr)
    qtbot.addWidget(panel)
    shapes = set()
    for decision, groups in (("skin_cancer", {"skin_cancer": 0.8, "other_disease": 0.1,
                                              "benign": 0.1}),
                             ("indeterminate", {"skin_cancer": 0.4, "other_disease": 0.3,
                                                "benign": 0.3}),
                             ("other_disease", {"skin_cancer": 0.1, "other_disease": 0.8,
                                                "benign": 0.1}),
                             ("benign", {"skin_cancer": 0.1, "other_disease": 0.1,
                                         "benign": 0.8})):
        panel.show_prediction(PredictionView.of(_prediction(decision, False, groups)))
        assert panel.banner.title.text() == text(f"decision.{decision}")
        shapes.add(panel.banner.icon.shape)
    assert len(shapes) == 4


def test_not_assessable_shows_no_probabilities_or_diagnosis(qtbot):
    panel = PredictionPanel(_tr)
    qtbot.addWidget(panel)
    panel.show()
    prediction = Prediction({}, {}, "not_assessable", False, 0.3, False, 9.0, "",
                            "guidance.not_assessable", "test-model", 0.1)
    panel.show_prediction(PredictionView.of(prediction))
    assert panel.banner.title.text() == "Not assessable — retake or refer"
    assert not panel.groups.isVisible() and not panel.classes.isVisible()
    assert panel.guidance.text() == text("guidance.not_assessable")
    assert not panel.banner.referral.isVisible()
    # a stored not-assessable prediction reads the same in history and review
    stored = PredictionView.of({"decision": "not_assessable", "referral": None,
                                "class_probabilities": {}, "group_probabilities": {}})
    panel.show_prediction(stored)
    assert panel.banner.title.text() == "Not assessable — retake or refer"


# -- accessibility and touch ----------------------------------------------------------------


CONTROLS = (QAbstractButton, QLineEdit, QComboBox, QAbstractSpinBox, QAbstractItemView)


@pytest.mark.parametrize("user", ["nurse", "derm", "admin"])
def test_every_control_has_an_accessible_name_and_a_touch_size(qtbot, make_window, station,
                                                                user):
    window = make_window(station)
    log_in(qtbot, window, user)
    for screen_id in window.visible_screens():
        window.show_screen(screen_id)
        qtbot.wait(50)
        screen = window.screens[screen_id]
        for widget in screen.findChildren(QWidget):
            if not isinstance(widget, CONTROLS) or not widget.isVisibleTo(window):
                continue
            if isinstance(widget, QHeaderView) or isinstance(widget.parent(), CONTROLS):
                continue  # parts of a table, spin box or combo box, not controls of their own
            label = f"{screen_id}/{widget.objectName() or type(widget).__name__}"
            assert widget.accessibleName(), f"{label} has no accessible name"
            if isinstance(widget, QAbstractButton | QLineEdit | QComboBox):
                assert widget.height() >= 44, f"{label} is {widget.height()} px tall"
    window.show_screen(window.visible_screens()[0])


# -- texts ------------------------------------------------------------------------------------


def _ui_keys_used() -> set[str]:
    found = set()
    for path in UI_DIR.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) \
                    and node.value.startswith("ui.") and " " not in node.value \
                    and not node.value.endswith("."):
                found.add(node.value)
    return found | _dynamic_keys()


def _dynamic_keys() -> set[str]:
    """Keys built with f-strings (sites, bands, checks, roles, columns...)."""
    from skinstation.auth import Role
    from skinstation.camera import BANDS
    from skinstation.ui.screens.capture import QUALITY_CHECKS
    from skinstation.ui.screens.history import COLUMNS, PERIODS
    from skinstation.ui.screens.patient import BODY_REGIONS
    from skinstation.ui.screens.settings_screen import QUALITY_FIELDS

    found = {f"ui.band.{b}" for b in BANDS} | {f"ui.quality.{q}" for q in QUALITY_CHECKS}
    found |= {f"ui.role.{r.value}" for r in Role} | {f"ui.history.col.{c}" for c in COLUMNS}
    found |= {f"ui.history.period.{p}" for p, _ in PERIODS}
    found |= {f"ui.settings.q.{q}" for q in QUALITY_FIELDS}
    found |= {f"ui.review_state.{s}" for s in ("reviewed", "unreviewed")}
    for region, sites in BODY_REGIONS:
        found |= {f"ui.region.{region}"} | {f"ui.site.{site}" for site in sites}
    for mode in ("login", "first_run"):
        found |= {f"ui.{mode}.{part}" for part in ("title", "intro", "submit")}
    found |= {f"ui.login.{f}" for f in ("username", "display_name", "password", "confirm")}
    found |= {f"ui.operators.{f}" for f in ("username", "display_name", "role", "password")}
    found |= {f"ui.sync.{f}" for f in ("queue", "last_success", "last_error")}
    return found


def test_every_ui_text_exists_in_english_and_korean():
    used = _ui_keys_used()
    assert len(used) > 150
    for language in ("en", "ko"):
        missing = sorted(used - keys(language))
        assert not missing, f"{language}: {missing}"
    assert {k for k in keys("en") if k.startswith("ui.")} == \
        {k for k in keys("ko") if k.startswith("ui.")}


def test_error_messages_are_sentences_not_tracebacks():
    locked = OperationalError("BEGIN IMMEDIATE", {}, sqlite3.OperationalError(
        "database is locked"))
    cases = {
        InvalidCredentialsError(): "Wrong username or password.",
        ModelFileError("cannot read model file /x.safetensors: No such file"): "Model missing",
        CameraDisconnectedError("simulator:x stopped delivering frames"): "disconnected",
        SyntheticFrameError("This is a synthetic demonstration frame, not a patient image"):
            "not a patient image",
        locked: "busy or locked",
        KeyError("boom"): "Unexpected problem (KeyError)",
    }
    for error, expected in cases.items():
        message = describe_error(error, _tr)
        assert expected in message
        assert "Traceback" not in message and "File \"" not in message


# -- the PySide6 6.12.0 reference-count workaround --------------------------------------------


def test_many_signal_emissions_and_void_calls_do_not_crash(qtbot):
    from PySide6.QtCore import QObject, Signal

    import skinstation.ui  # noqa: F401 - installs the guard

    class Emitter(QObject):
        ping = Signal(object)

    emitter = Emitter()
    received = []
    emitter.ping.connect(received.append)
    before = sys.getrefcount(None), sys.getrefcount(True)
    for number in range(30000):  # far more than None's/True's reference count on 3.11
        emitter.ping.emit(number)
        emitter.setObjectName("x")
    assert len(received) == 30000
    assert sys.getrefcount(None) > 0 and sys.getrefcount(True) > 0
    assert before[0] > 0


# -- python -m skinstation --------------------------------------------------------------------


def test_python_m_skinstation_opens_the_app_on_defaults(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("SKINSTATION_")}
    env.update(QT_QPA_PLATFORM="offscreen", HOME=str(tmp_path))
    result = subprocess.run(
        [sys.executable, "-m", "skinstation", "--exit-after", "2"],
        capture_output=True, text=True, env=env, timeout=120,
        cwd=Path(__file__).resolve().parents[2])
    assert result.returncode == 0, result.stderr[-2000:]
    assert "station window open" in result.stdout
    assert (tmp_path / ".local/share/skinstation/station.db").is_file()
    assert "Traceback" not in result.stderr


def test_without_a_camera_the_data_dir_feeds_the_simulated_dermatoscope(tmp_path, data_dir):
    from skinstation.camera import open_frame_source
    from skinstation.settings import Settings
    from skinstation.ui.context import effective_camera_settings

    settings = Settings.load(env={}, home=tmp_path, data_dir=data_dir)
    camera = effective_camera_settings(settings)
    assert settings.camera.source == "auto"
    assert camera.simulator_folder == str(data_dir / "ham10000" / "images")
    with open_frame_source(camera, list_devices=list) as source:
        assert source.kind == "simulator" and "no camera found" in source.selection_reason
    bare = effective_camera_settings(Settings.load(env={}, home=tmp_path))
    with open_frame_source(bare, list_devices=list) as source:
        assert source.kind == "synthetic"  # said in words on the capture screen
