"""Referral report PDFs (issue 20): written through the real station, read back with pypdf.

Real parts: the station (SQLite, images encrypted at rest, the tiny model, HAM10000 frames
through the simulated dermatoscope), Debian's NanumGothic and DejaVu Sans fonts, pypdf.
"""

from __future__ import annotations

import datetime as dt
import stat
from pathlib import Path

import pytest
from pypdf import PdfReader

from skinstation.auth import PermissionDeniedError, Role
from skinstation.camera import SimulatedDermatoscope
from skinstation.cli import main
from skinstation.core.i18n import TranslatableError, text
from skinstation.services import report_fonts
from skinstation.services.lesions import LesionService
from skinstation.services.report import capture_report, lesion_report
from skinstation.services.report_fonts import report_font
from skinstation.services.result_text import percent
from tests.export_helpers import NAME, PASSWORD, PSEUDONYM, audit_rows, make_captures

NANUM = Path("/usr/share/fonts/truetype/nanum/NanumGothic.ttf")
DEJAVU = Path("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf")


def flat(words: str) -> str:
    """Text without its line breaks (a wrapped line reads as one)."""
    return " ".join(words.split())


def squeezed(words: str) -> str:
    """Text without any white space (Korean lines wrap between any two letters)."""
    return "".join(words.split())


def read_pdf(path: Path) -> tuple[PdfReader, str]:
    reader = PdfReader(path)
    return reader, "\n".join(page.extract_text() for page in reader.pages)


def value_after(lines: list[str], name: str) -> str:
    """The line after the last line that reads ``name`` (a table row's value)."""
    return lines[len(lines) - 1 - lines[::-1].index(name) + 1]


def base_fonts(reader: PdfReader) -> set[str]:
    """The BaseFont names of page 1's fonts whose file is embedded (FontFile2: TrueType)."""
    fonts = reader.pages[0]["/Resources"]["/Font"]
    names = set()
    for font in fonts.values():
        font = font.get_object()
        descriptor = font.get("/FontDescriptor")
        if descriptor is not None and "/FontFile2" in descriptor.get_object():
            names.add(str(font["/BaseFont"]).split("+", 1)[-1])
    return names


def image_count(reader: PdfReader) -> int:
    objects = reader.pages[0]["/Resources"].get("/XObject") or {}
    return sum(1 for item in objects.values() if item.get_object()["/Subtype"] == "/Image")


@pytest.fixture()
def made(settings, tiny_model, ham_dir):
    made = make_captures(settings.replace(model_path=tiny_model, store_patient_names=True),
                         ham_dir, body_site="back", name=NAME)
    service = made.service
    admin = service.login("admin", PASSWORD)
    service.create_operator(admin, "derm", "Dr Kim", Role.DERMATOLOGIST, PASSWORD)
    service.logout(admin)
    yield made
    service.database.dispose()


@pytest.fixture()
def labelled(made):
    """The capture with the nurse's label and note and a dermatologist's review."""
    service = made.service
    capture_id = made.captures[0].capture.id
    nurse = service.login("nurse", PASSWORD)
    service.label(nurse, capture_id, "nv", note="Raised, 6 mm <changed> since May & June")
    derm = service.login("derm", PASSWORD)
    service.review(derm, capture_id, "bkl", note="Seborrhoeic keratosis on dermoscopy")
    return made, nurse, capture_id


def referral_prediction(service, capture_id: int) -> float:
    """Store a referred skin-cancer prediction of the model in use; return its threshold."""
    info = service.model_info()
    assert info.referral_threshold is not None
    service.store.save_prediction(
        capture_id, model_version=info.version,
        class_probabilities={"mel": 0.995, "nv": 0.004, "bkl": 0.001, "bcc": 0.0, "akiec": 0.0,
                             "df": 0.0, "vasc": 0.0},
        group_probabilities={"skin_cancer": 0.995, "benign": 0.005, "other_disease": 0.0},
        decision="skin_cancer", referral=True)
    return info.referral_threshold


def test_english_report_says_what_the_station_says(labelled, tmp_path: Path) -> None:
    made, nurse, capture_id = labelled
    service = made.service
    threshold = referral_prediction(service, capture_id)
    out = capture_report(service, nurse, capture_id, tmp_path / "out" / "report.pdf", "en")
    reader, words = read_pdf(out)
    assert len(reader.pages) == 1
    body = flat(words)
    assert "Skin lesion referral report" in body
    assert "Triage result Suspected skin cancer" in body
    referral = ("Safety referral: possible skin cancer — skin cancer >99%, at or above the "
                f"referral threshold ({percent(threshold)}).")
    assert referral in body
    assert text("guidance.skin_cancer") in body
    assert (f"Referral flag: yes · skin-cancer probability >99% · referral threshold "
            f"{percent(threshold)}") in body
    lines = words.splitlines()
    for name, value in (("Skin cancer", ">99%"), ("Benign", "<1%"), ("Other skin disease", "0%"),
                        ("Melanoma (mel)", ">99%"), ("Melanocytic nevus (mole) (nv)", "<1%"),
                        ("Benign keratosis-like lesion (bkl)", "<1%"),
                        ("Basal cell carcinoma (bcc)", "0%")):
        assert value_after(lines, name) == value, name
    assert "Body site Back" in body and "Body map: Back" in body
    assert f"Patient (pseudonym) {PSEUDONYM}" in body
    assert NAME not in body  # the station keeps the name; documents leave it out by default
    assert "Station station-1" in body and "Captured by Nurse" in body
    assert f"Model version {service.model_info().version}" in body
    assert ("Operator's label: Melanocytic nevus (mole) (nv) — Nurse, " in body
            and "— Raised, 6 mm <changed> since May & June" in body)
    assert ("Final label (reviewer): Benign keratosis-like lesion (bkl) — Dr Kim, " in body
            and "— Seborrhoeic keratosis on dermoscopy" in body)
    assert text("notice") in body
    assert image_count(reader) == 1
    assert "NanumGothic" in base_fonts(reader)
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    assert audit_rows(service, "capture.report") == [
        (nurse.operator_id, str(capture_id), {"language": "en", "names": False,
                                              "heatmap": False})]


def test_another_models_prediction_has_no_threshold_to_show(made, tmp_path: Path) -> None:
    service = made.service
    nurse = service.login("nurse", PASSWORD)
    capture_id = made.captures[0].capture.id
    service.store.save_prediction(
        capture_id, model_version="an-older-model", class_probabilities={"mel": 0.6, "nv": 0.4},
        group_probabilities={"skin_cancer": 0.6, "benign": 0.4}, decision="skin_cancer",
        referral=True)
    _, words = read_pdf(capture_report(service, nurse, capture_id, tmp_path / "o.pdf", "en"))
    body = flat(words)
    assert "Suspected skin cancer Safety referral: possible skin cancer — skin cancer 60%." in body
    assert ("Referral flag: yes · skin-cancer probability 60% · referral threshold not recorded"
            in body)
    assert "Model version an-older-model" in body


def test_korean_report_embeds_a_hangul_font(labelled, tmp_path: Path) -> None:
    made, nurse, capture_id = labelled
    service = made.service
    stored = service.store.latest_prediction(capture_id)
    out = capture_report(service, nurse, capture_id, tmp_path / "ko.pdf", "ko", heatmap=True)
    reader, words = read_pdf(out)
    assert len(reader.pages) == 1
    body = squeezed(words)
    assert squeezed("피부 병변 의뢰서") in body
    decision = str(stored["decision"])
    assert squeezed(f"분류 결과\n{text(f'decision.{decision}', 'ko')}") in body
    groups = stored["group_probabilities"]
    lines = words.splitlines()
    for code in ("skin_cancer", "other_disease", "benign"):
        name = text(f"group.{code}", "ko")
        assert value_after(lines, name) == percent(groups[code]), code
    assert squeezed("신체 부위\n등") in body and squeezed("신체 부위 지도: 등") in body
    assert squeezed(f"환자 (가명 ID)\n{PSEUDONYM}") in body
    assert squeezed(text("notice", "ko")) in body
    assert squeezed("최종 판독 (판독의): 양성 각화성 병변 (bkl) — Dr Kim") in body
    assert squeezed("히트맵: ") in body and image_count(reader) == 2
    assert "NanumGothic" in base_fonts(reader)
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    assert audit_rows(service, "capture.report")[-1] == (
        nurse.operator_id, str(capture_id), {"language": "ko", "names": False, "heatmap": True})


def test_names_only_when_the_settings_allow_them(made, tmp_path: Path) -> None:
    service = made.service
    service.settings = service.settings.replace(interop={"send_patient_names": True})
    nurse = service.login("nurse", PASSWORD)
    capture_id = made.captures[0].capture.id
    _, words = read_pdf(capture_report(service, nurse, capture_id, tmp_path / "n.pdf", "en"))
    assert f"Patient name {NAME}" in flat(words)
    assert audit_rows(service, "capture.report")[-1][2]["names"] is True
    for _, _, detail in audit_rows(service, "capture.report"):
        assert NAME not in str(detail) and PSEUDONYM not in str(detail)


def test_korean_report_without_a_hangul_font_is_refused(made, tmp_path: Path,
                                                        monkeypatch) -> None:
    service = made.service
    nurse = service.login("nurse", PASSWORD)
    capture_id = made.captures[0].capture.id
    service.settings = service.settings.replace(report_font=str(DEJAVU))
    with pytest.raises(TranslatableError) as raised:
        capture_report(service, nurse, capture_id, tmp_path / "ko.pdf", "ko")
    assert raised.value.text_key == "error.report_font_no_hangul"
    assert str(raised.value) == (f"The report font {DEJAVU} has no Korean (Hangul) letters. "
                                 "Set report_font to a font that has them (e.g. "
                                 "NanumGothic.ttf).")
    assert raised.value.translated("ko").startswith(f"의뢰서 글꼴 {DEJAVU}에는 한글이 없습니다.")
    assert not (tmp_path / "ko.pdf").exists()
    assert audit_rows(service, "capture.report") == []
    reader, _ = read_pdf(capture_report(service, nurse, capture_id, tmp_path / "en.pdf", "en"))
    assert "DejaVuSans" in base_fonts(reader)  # English may use any TrueType font
    service.settings = service.settings.replace(report_font=str(tmp_path / "missing.ttf"))
    with pytest.raises(TranslatableError) as raised:
        capture_report(service, nurse, capture_id, tmp_path / "x.pdf", "en")
    assert raised.value.text_key == "error.report_font_unreadable"
    service.settings = service.settings.replace(report_font="")
    monkeypatch.setattr(report_fonts, "font_folders", lambda: [tmp_path / "no-fonts"])
    with pytest.raises(TranslatableError) as raised:
        capture_report(service, nurse, capture_id, tmp_path / "ko.pdf", "ko")
    assert raised.value.text_key == "error.report_font_missing"
    reader, words = read_pdf(capture_report(service, nurse, capture_id, tmp_path / "h.pdf",
                                            "en"))
    assert base_fonts(reader) == set() and "Skin lesion referral report" in words  # Helvetica


def test_the_system_font_search(tmp_path: Path) -> None:
    assert report_font("", "ko", [NANUM.parent.parent]).path == NANUM
    assert report_font("", "en", [DEJAVU.parent]).path == DEJAVU
    assert report_font("", "en", [tmp_path]).name == "Helvetica"
    with pytest.raises(TranslatableError) as raised:
        report_font("", "ko", [DEJAVU.parent])
    assert raised.value.text_key == "error.report_font_missing"


def test_admins_may_not_write_reports(made, tmp_path: Path) -> None:
    service = made.service
    admin = service.login("admin", PASSWORD)
    with pytest.raises(PermissionDeniedError):
        capture_report(service, admin, made.captures[0].capture.id, tmp_path / "a.pdf", "en")
    assert not (tmp_path / "a.pdf").exists()
    assert audit_rows(service, "capture.report") == []


def test_lesion_report_shows_its_captures_newest_first(made, ham_dir: Path,
                                                       tmp_path: Path) -> None:
    service = made.service
    nurse = service.login("nurse", PASSWORD)
    first = made.captures[0].capture
    visit = service.visit(nurse, first.visit_id)
    lesions = LesionService(service)
    lesion = lesions.create_lesion(nurse, visit.patient_id, "back", "back", "left", 0.4, 0.3,
                                   label="mole")
    lesions.assign_capture(nurse, first.id, lesion.id)
    with SimulatedDermatoscope(ham_dir / "images") as source:
        source.read()
        frame = source.read()  # the next image: identical pictures are embedded once
    prediction = service.analyse(frame.pixels, classify_if_poor=True).prediction
    second = service.save_capture(nurse, visit.id, frame, band="white", body_site="back",
                                  access_time=dt.datetime.now(dt.UTC), prediction=prediction,
                                  lesion_id=lesion.id).capture
    out = lesion_report(service, nurse, lesion.id, tmp_path / "lesion.pdf", "en")
    reader, words = read_pdf(out)
    body = flat(words)
    assert len(reader.pages) == 1
    assert "Skin lesion referral report — lesion over time" in body
    assert f"Lesion #{lesion.id} mole · left side" in body
    assert f"Capture #{second.id} · White" in body  # the newest capture is detailed
    assert "Captures of this lesion, newest first (2 of 2)" in body
    assert image_count(reader) == 3
    assert text("notice") in body
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    assert audit_rows(service, "capture.report")[-1] == (
        nurse.operator_id, str(lesion.id),
        {"language": "en", "names": False, "heatmap": False, "captures": 2,
         "capture_id": second.id})


def test_cli_writes_a_report(made, tmp_path: Path, monkeypatch, capsys) -> None:
    settings = made.service.settings
    config = tmp_path / "station.toml"
    config.write_text(f'home = "{settings.home}"\nmodel_path = "{settings.model_path}"\n'
                      'store_patient_names = true\n')
    monkeypatch.setenv("SKINSTATION_CONFIG", str(config))
    capture = made.captures[0].capture
    out = tmp_path / "cli" / "report.pdf"
    assert main(["report", "--capture", str(capture.id), "--out", str(out),
                 "--language", "ko"]) == 0
    assert capsys.readouterr().out.splitlines() == [f"wrote {out}"]
    reader, words = read_pdf(out)
    assert len(reader.pages) == 1 and squeezed("신체 부위 지도: 등") in squeezed(words)
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    assert audit_rows(made.service, "capture.report") == [
        (None, str(capture.id), {"language": "ko", "names": False, "heatmap": False})]
    assert main(["report", "--capture", "999", "--out", str(out)]) == 1
    assert capsys.readouterr().err.strip() == "error: capture 999 not found"
    config.write_text(config.read_text() + f'report_font = "{DEJAVU}"\n')
    assert main(["report", "--capture", str(capture.id), "--out", str(tmp_path / "k.pdf"),
                 "--language", "ko"]) == 1
    assert capsys.readouterr().err.strip().startswith(f"error: 의뢰서 글꼴 {DEJAVU}에는")


def test_body_map_spots() -> None:
    from skinstation.services.report_pdf import site_spots

    assert site_spots("unknown") == [] and site_spots("not-a-site") == []
    assert site_spots("trunk") == [("front", 0.0, 86.0), ("back", 0.0, 86.0)]
    assert site_spots("trunk", view="back") == [("back", 0.0, 86.0)]
    assert site_spots("back", view="front") == [("back", 0.0, 90.0)]  # no front spot: kept
    # the patient's left arm is on the right of the front view
    assert site_spots("upper_extremity", side="left") == [("front", 19.0, 88.0)]
    assert site_spots("upper_extremity", side="right") == [("front", -19.0, 88.0)]
