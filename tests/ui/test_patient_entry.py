"""The patient screen: a name or a date of birth is refused, a new patient is created only when
the operator confirms, an existing one is reported as found."""

from __future__ import annotations

from PySide6.QtCore import Qt
from sqlalchemy import func, select

from skinstation.storage import Patient, StationStore
from skinstation.ui.main_window import MainWindow
from tests.ui.helpers import TIMEOUT, log_in

EXAMPLE = "Enter the patient's pseudonymous ID, e.g. P-0001."


def _patients(window: MainWindow) -> list[str]:
    service = window.ctx.require_service()
    with service.database.transaction() as session:
        assert session.scalar(select(func.count()).select_from(Patient)) is not None
        return sorted(session.scalars(select(Patient.pseudonym)))


def _look_up(qtbot, window: MainWindow, typed: str) -> None:
    screen = window.screens["patient"]
    screen.pseudonym.clear()
    if typed.isascii():
        qtbot.keyClicks(screen.pseudonym, typed)
    else:  # QTest key clicks abort on characters outside Latin-1: paste them instead
        screen.pseudonym.setText(typed)
    qtbot.mouseClick(screen.find_button, Qt.MouseButton.LeftButton)


def _nurse_on_patient_screen(qtbot, make_window, station) -> MainWindow:
    window = make_window(station)
    log_in(qtbot, window, "nurse")
    window.show_screen("patient")
    return window


def test_a_name_with_a_date_of_birth_is_refused_and_nothing_is_created(
        qtbot, make_window, station):
    window = _nurse_on_patient_screen(qtbot, make_window, station)
    screen = window.screens["patient"]
    for typed, message in (
            ("Hong Gildong 1961-03-02",
             f"This looks like a date of birth, which must not be entered here. {EXAMPLE}"),
            ("홍길동",
             f"This looks like a person's name, which must not be entered here. {EXAMPLE}"),
            ("P 0001", "The patient ID must not contain spaces. Enter the patient's pseudonymous "
                       "ID as one code, e.g. P-0001.")):
        _look_up(qtbot, window, typed)
        assert screen.message.kind == "error"
        assert screen.message.message == message
        assert screen.patient_status.text() == "No patient selected."
        assert not screen.create_button.isVisible() and not screen.start_button.isEnabled()
    qtbot.wait(200)  # nothing was queued for the data thread either
    assert _patients(window) == []

    window.ctx.set_language("ko")
    _look_up(qtbot, window, "홍길동")
    assert screen.message.message == ("사람 이름으로 보입니다. 여기에는 이름을 입력하면 안 됩니다. "
                                      "환자의 가명 ID를 입력하십시오 (예: P-0001).")
    assert _patients(window) == []


def test_a_300_character_id_is_refused_whole_never_cut_to_64(qtbot, make_window, station):
    window = _nurse_on_patient_screen(qtbot, make_window, station)
    screen = window.screens["patient"]
    screen.pseudonym.setText("P" * 300)
    qtbot.mouseClick(screen.find_button, Qt.MouseButton.LeftButton)
    assert len(screen.pseudonym.text()) == 300
    assert screen.message.message == (
        f"The patient ID is 300 characters long, more than the 64 allowed (nothing was cut off). "
        f"{EXAMPLE}")
    qtbot.wait(200)
    assert _patients(window) == []


def test_a_new_pseudonym_is_created_only_after_the_operator_confirms(qtbot, make_window, station):
    window = _nurse_on_patient_screen(qtbot, make_window, station)
    screen = window.screens["patient"]
    _look_up(qtbot, window, "P-0001")
    qtbot.waitUntil(lambda: screen.create_button.isVisible(), timeout=TIMEOUT)
    assert screen.patient_status.text() == "No patient P-0001 on this station."
    assert screen.message.kind == "warning"
    assert screen.message.message == (
        "Create a new patient P-0001? Check the ID first: a typo creates a second patient. "
        "Press Create new patient to confirm.")
    assert screen.create_button.text() == "Create new patient"
    assert not screen.start_button.isEnabled()
    assert _patients(window) == []

    qtbot.keyClicks(screen.pseudonym, "2")  # typing another ID withdraws the offer
    assert not screen.create_button.isVisible()
    assert screen.patient_status.text() == "No patient selected."
    assert _patients(window) == []

    _look_up(qtbot, window, "P-0001")
    qtbot.waitUntil(lambda: screen.create_button.isVisible(), timeout=TIMEOUT)
    qtbot.mouseClick(screen.create_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: screen.start_button.isEnabled(), timeout=TIMEOUT)
    assert screen.patient_status.text() == (
        "New patient P-0001 created — start a visit to capture.")
    assert not screen.create_button.isVisible()
    assert _patients(window) == ["P-0001"]


def test_an_existing_pseudonym_is_found_and_nothing_is_created(qtbot, make_window, station):
    window = _nurse_on_patient_screen(qtbot, make_window, station)
    service = window.ctx.require_service()
    store = StationStore(service.database)
    store.create_patient("PG-0004", actor_id=window.ctx.require_session().operator_id)
    screen = window.screens["patient"]
    _look_up(qtbot, window, "PG-0004")
    qtbot.waitUntil(lambda: screen.start_button.isEnabled(), timeout=TIMEOUT)
    assert screen.patient_status.text() == (
        "Found existing patient PG-0004 — start a visit to capture.")
    assert not screen.create_button.isVisible()
    assert screen.message.message == ""
    assert _patients(window) == ["PG-0004"]
