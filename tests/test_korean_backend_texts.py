"""Back-end texts a person reads are shown in the window's language (issue 19, point 12).

Password policy refusals, LED controller errors, sync errors and status, the image-quality
reasons and the model card figures all go through the text catalogue: in Korean they are
Korean (never the English fallback), in English they are the sentences they always were.
"""

from __future__ import annotations

import dataclasses
import re

import numpy as np
import pytest

from skinstation.camera import IlluminatorError, SerialIlluminator
from skinstation.core.i18n import PLAIN_KEY, KeyedError, keys, text
from skinstation.core.passwords import PasswordPolicyError, check_password_policy
from skinstation.inference.quality import assess_quality
from skinstation.services.model_text import metrics_lines
from skinstation.services.quality_text import quality_reason, quality_reasons
from skinstation.settings import AuthSettings, QualitySettings
from skinstation.sync.client import EngineRejectedError, EngineServerError, SyncError
from skinstation.sync.credentials import CredentialError, CredentialStore, StationCredential
from skinstation.sync.transport import SyncConfigError, check_engine_url
from skinstation.ui.errors import describe_error
from skinstation.ui.station_sync import EnrollmentError, StationSync
from skinstation.ui.sync_status import SyncStatus

HANGUL = re.compile(r"[\uac00-\ud7a3]")


def _tr(language: str):
    def tr(key: str, **values: object) -> str:
        value = text(key, language)
        return value.format(**values) if values else value
    return tr


def _korean(error: BaseException) -> str:
    """``error`` as the Korean window shows it; asserts it is the Korean catalogue text."""
    assert isinstance(error, KeyedError) and error.text_key != PLAIN_KEY, error
    shown = describe_error(error, _tr("ko"))
    assert text(error.text_key, "ko").format(**error.text_values) in shown
    assert HANGUL.search(shown), shown
    assert str(error) not in shown
    return shown


def _refusal(password: str, username: str = "nina") -> PasswordPolicyError:
    with pytest.raises(PasswordPolicyError) as refused:
        check_password_policy(password, username=username, policy=AuthSettings())
    return refused.value


@pytest.mark.parametrize(("password", "english", "korean"), [
    ("short", "Password must be at least 10 characters long.",
     "비밀번호는 10자 이상이어야 합니다."),
    ("x" * 300, "Password must be at most 256 characters long.",
     "비밀번호는 256자 이하여야 합니다."),
    ("my-nina-password", "Password must not contain the username.",
     "비밀번호에 사용자 이름을 넣을 수 없습니다."),
    ("password123", "Password is too easy to guess; choose another.",
     "추측하기 쉬운 비밀번호입니다. 다른 비밀번호를 정하십시오."),
])
def test_password_policy_refusals_are_korean_in_the_korean_window(password, english,
                                                                   korean) -> None:
    error = _refusal(password)
    assert str(error) == english and isinstance(error, ValueError)
    assert _korean(error) == korean
    assert describe_error(error, _tr("en")) == english


def test_a_plain_sentence_is_still_accepted_and_shown_as_it_is() -> None:
    error = PasswordPolicyError("The new password must differ from the current one.")
    assert str(error) == "The new password must differ from the current one."
    assert describe_error(error, _tr("ko")) == str(error)


def test_led_controller_errors_are_korean_in_the_korean_window() -> None:
    light = SerialIlluminator("/dev/ttyNO-SUCH-CONTROLLER", ["white"], timeout_seconds=0.1)
    with pytest.raises(IlluminatorError) as missing:
        light.open()
    assert str(missing.value) == ("cannot open LED controller port /dev/ttyNO-SUCH-CONTROLLER: "
                                  "no such port (is the controller plugged in?)")
    shown = _korean(missing.value)
    assert shown == ("조명 제어기 문제: LED 조명 제어기 포트 /dev/ttyNO-SUCH-CONTROLLER을(를) "
                     "열 수 없습니다: 포트가 없습니다 (제어기가 연결되어 있습니까?)")
    with pytest.raises(IlluminatorError) as closed:
        light.command("PING")
    assert str(closed.value) == "LED controller on /dev/ttyNO-SUCH-CONTROLLER is not open"
    assert _korean(closed.value).endswith(
        "/dev/ttyNO-SUCH-CONTROLLER의 LED 조명 제어기가 열려 있지 않습니다")
    assert light.description == "LED controller on /dev/ttyNO-SUCH-CONTROLLER"
    key, values = light.description_text
    assert text(key, "ko").format(**values) == "/dev/ttyNO-SUCH-CONTROLLER의 LED 조명 제어기"


@pytest.mark.parametrize(("url", "verify", "english"), [
    ("", True, "no engine URL configured (sync.engine_url)"),
    ("ftp://engine", True, "engine URL 'ftp://engine' must be https://host[:port]"),
    ("http://engine.example", True,
     "refusing plain http to engine.example: patient data must travel over https"),
    ("https://engine.example", False, "refusing to turn TLS verification off for "
     "engine.example; configure sync.ca_bundle with the engine's CA instead"),
])
def test_sync_configuration_errors_are_korean_in_the_korean_window(url, verify,
                                                                   english) -> None:
    with pytest.raises(SyncConfigError) as refused:
        check_engine_url(url, verify_tls=verify)
    assert str(refused.value) == english
    _korean(refused.value)


def test_engine_refusals_and_server_errors_are_korean_in_the_korean_window() -> None:
    rejected = EngineRejectedError(401, "station credential was revoked")
    assert str(rejected) == "engine refused (401): station credential was revoked"
    assert (rejected.status, rejected.detail) == (401, "station credential was revoked")
    assert _korean(rejected) == "엔진이 요청을 거부했습니다 (401): station credential was revoked"
    server = EngineServerError(503, "error.sync.server", status=503, method="POST",
                               path="/captures", detail="busy")
    assert (str(server), server.status) == ("engine error 503 on POST /captures: busy", 503)
    _korean(server)
    refused = SyncError("error.sync.refused", count=2, reason="engine refused (422): x")
    assert str(refused) == "2 capture(s) refused by the engine; first: engine refused (422): x"
    assert _korean(refused) == ("엔진이 촬영 2건을 거부했습니다. 첫 번째 사유: "
                                "engine refused (422): x")
    _korean(CredentialError("error.sync.keyring", reason="locked"))
    _korean(EnrollmentError("error.sync.ca_missing", path="/x.pem"))


def test_the_sync_panel_status_is_worded_in_the_window_language(settings, tiny_model) -> None:
    """The runner keeps the last error's key; the panel words it (English words as before)."""
    from skinstation.services.station import StationService
    service = None
    sync = StationSync(lambda: service)
    opening = SyncStatus.of(sync.status())
    assert opening.error_text(_tr("ko")) == "스테이션 데이터베이스를 여는 중입니다."
    assert opening.error_text(_tr("en")) == "The station database is still opening."
    configured = settings.replace(model_path=tiny_model, sync=dataclasses.replace(
        settings.sync, engine_url="https://127.0.0.1:9", interval_seconds=3600, retries=0,
        backoff_seconds=0.0, timeout_seconds=2.0))
    service = StationService(configured)
    try:
        not_enrolled = SyncStatus.of(sync.status())
        assert not_enrolled.error_text(_tr("ko")).startswith("등록되지 않음: 관리자가")
        CredentialStore(configured.station_id).save(StationCredential(
            "https://127.0.0.1:9", 7, "clinic-1", "secret-token", "cHVibGlj", "kid"))
        after = sync.sync_now()  # nothing listens on port 9: the engine is unreachable
        assert after.last_error.startswith("engine https://127.0.0.1:9 unreachable: ")
        assert after.last_error_text is not None
        assert after.last_error_text[0] == "error.sync.unreachable"
        assert after.error_text(_tr("en")) == after.last_error
        assert after.error_text(_tr("ko")).startswith(
            "엔진 https://127.0.0.1:9에 연결할 수 없습니다: ")
    finally:
        sync.stop()


def test_a_status_without_a_key_shows_its_words() -> None:
    status = SyncStatus(0, None, "engine unreachable")
    assert status.error_text(_tr("ko")) == "engine unreachable"
    keyed = SyncStatus.of({"queue_length": 1, "last_error": "x",
                           "last_error_text": ("error.sync.no_url", {})})
    assert keyed.error_text(_tr("ko")) == "엔진 URL이 설정되지 않았습니다 (sync.engine_url)"
    unknown = SyncStatus(0, None, "old words", last_error_text=("error.sync.gone", {}))
    assert unknown.error_text(_tr("ko")) == "old words"


def _frames() -> list[np.ndarray]:
    rng = np.random.default_rng(3)
    dark = np.full((240, 320, 3), 12, np.uint8)
    bright = np.full((240, 320, 3), 250, np.uint8)
    noisy = rng.integers(0, 256, (240, 320, 3), dtype=np.uint8)
    lesion = np.full((240, 320, 3), (205, 150, 135), np.uint8)
    lesion[80:160, 120:200] = (90, 50, 40)
    return [dark, bright, noisy, lesion]


def test_quality_reasons_are_korean_and_english_as_before() -> None:
    settings = QualitySettings()
    seen_failures = set()
    for frame in _frames():
        report = assess_quality(frame, settings)
        for check in report.checks:
            assert quality_reason(_tr("en"), check) == check.reason  # the same English words
            korean = quality_reason(_tr("ko"), check)
            assert HANGUL.search(korean) and korean != check.reason, korean
        assert quality_reasons(_tr("en"), report) == report.reasons
        seen_failures |= {check.name for check in report.failures}
    assert {"underexposure", "overexposure"} <= seen_failures
    dark = assess_quality(_frames()[0], settings)
    assert any(line.startswith("영상이 너무 어둡습니다: 밝기 12.0 (기준 ")
               for line in quality_reasons(_tr("ko"), dark))


METRICS = {"test": {"images": 700, "balanced_accuracy": 0.71234, "ece": 0.0412,
                    "triage": {"cancer_auc": 0.9},
                    "referral": {"sensitivity": 0.95, "specificity": 0.6},
                    "decision_rule": {"coverage": 0.82}}}


def test_model_card_figures_are_translated() -> None:
    assert metrics_lines(_tr("en"), METRICS, 0.25) == [
        "test: 700 images, balanced accuracy 0.712, skin-cancer AUC 0.900, referral "
        "sensitivity 0.950 / specificity 0.600, decided 82%, ECE 0.041",
        "referral threshold p(skin cancer) ≥ 0.250"]
    assert metrics_lines(_tr("ko"), METRICS, 0.25) == [
        "test: 영상 700장, 균형 정확도 0.712, 피부암 AUC 0.900, 의뢰 민감도 0.950 / 특이도 "
        "0.600, 판정 비율 82%, 보정 오차(ECE) 0.041",
        "의뢰 기준: 피부암 확률 ≥ 0.250"]


def test_every_korean_error_text_is_korean() -> None:
    for key in sorted(k for k in keys("ko") if k.startswith(("error.", "quality.", "metrics.",
                                                              "light."))):
        korean = text(key, "ko")
        if key in (PLAIN_KEY, "metrics.line", "metrics.separator"):
            continue
        assert HANGUL.search(korean), f"{key}: {korean!r}"


def test_indeterminate_and_not_assessable_read_differently_in_korean() -> None:
    indeterminate, not_assessable = (text("decision.indeterminate", "ko"),
                                     text("decision.not_assessable", "ko"))
    assert indeterminate.startswith("판정 보류") and "전문의" in indeterminate
    assert not_assessable.startswith("영상 평가 불가") and "재촬영" in not_assessable
    assert "불가" not in indeterminate
    assert text("guidance.indeterminate", "ko").startswith("판정 보류")
    assert text("guidance.not_assessable", "ko").startswith("영상 평가 불가")
    assert text("ui.result.not_assessable", "ko").startswith("영상 평가 불가")
    # quality chips name what is checked: "not too bright", never a bare "not bright"
    assert text("ui.quality.overexposure", "ko") == "너무 밝지 않음"
    assert text("ui.quality.underexposure", "ko") == "너무 어둡지 않음"
