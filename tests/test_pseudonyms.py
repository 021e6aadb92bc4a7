"""Pseudonyms: names, dates of birth, spaces and over-long IDs never become a patient's ID."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import func, select

from skinstation.core.pseudonyms import MAX_PSEUDONYM_LENGTH, PseudonymError, check_pseudonym
from skinstation.settings import DEFAULT_PSEUDONYM_PATTERN, Settings
from skinstation.storage import AuditEvent, Database, Patient, StationStore
from tests.test_storage_helpers import BACKENDS, add_operator, open_backend

HINT = "enter the patient's pseudonymous ID, e.g. P-0001"
DATE_OF_BIRTH = ("pseudonym looks like it holds a date of birth, which must not be entered "
                 f"here; {HINT}")
NAME = f"pseudonym looks like a person's name, which must not be entered here; {HINT}"
SPACES = ("pseudonym must not contain spaces; enter the patient's pseudonymous ID as one code, "
          "e.g. P-0001")
TOO_LONG = (f"pseudonym is 300 characters long, more than the 64 allowed (nothing was cut off); "
            f"{HINT}")


def _refusal(value: str, pattern: str = DEFAULT_PSEUDONYM_PATTERN) -> tuple[str, str]:
    with pytest.raises(PseudonymError) as caught:
        check_pseudonym(value, pattern)
    return caught.value.reason, str(caught.value)


@pytest.mark.parametrize(("value", "reason", "message"), [
    ("Hong Gildong 1961-03-02", "date_of_birth", DATE_OF_BIRTH),
    ("홍길동", "name", NAME),
    ("P 0001", "whitespace", SPACES),
    ("P-0001-1961-03-02", "date_of_birth", DATE_OF_BIRTH),
    ("P" * 300, "too_long", TOO_LONG),
    ("Hong Gildong", "name", NAME),
    ("Roe, Jane", "name", NAME),
    ("김 철수", "name", NAME),
    ("02.03.1961", "date_of_birth", DATE_OF_BIRTH),
    ("03/02/1961", "date_of_birth", DATE_OF_BIRTH),
    ("19610302", "date_of_birth", DATE_OF_BIRTH),
    ("P-610302-1234567", "date_of_birth", DATE_OF_BIRTH),  # resident registration number
    ("Hong 610302", "date_of_birth", DATE_OF_BIRTH),
    ("   ", "empty", f"pseudonym is empty; {HINT}"),
    ("P\x00-1", "control",
     "pseudonym must not contain control characters; found U+0000 at position 1"),
    ("P#1", "pattern",
     f"pseudonym does not match this station's rule {DEFAULT_PSEUDONYM_PATTERN}; {HINT}"),
])
def test_names_dates_of_birth_spaces_and_long_ids_are_refused_with_the_reason(
        value: str, reason: str, message: str) -> None:
    assert _refusal(value) == (reason, message)


@pytest.mark.parametrize("value", ["P-0001", "PG-0004", "K7Q2M", "P-000123", "PSN-KEEP-st-erase",
                                   "PX-ENC-0042", "P-ui-1", "nobody", "P-19610230", "A" * 64])
def test_pseudonyms_are_accepted_unchanged(value: str) -> None:
    assert check_pseudonym(value) == value
    assert check_pseudonym(f"  {value} ") == value  # surrounding blanks only are dropped


def test_the_refusal_names_what_a_translation_needs_and_never_quotes_the_value() -> None:
    with pytest.raises(PseudonymError) as caught:
        check_pseudonym("Hong Gildong 1961-03-02")
    assert "Hong" not in str(caught.value) and "1961" not in str(caught.value)
    with pytest.raises(PseudonymError) as long:
        check_pseudonym("x" * 300)
    assert long.value.values == {"length": 300, "maximum": MAX_PSEUDONYM_LENGTH}


def test_the_station_pattern_is_a_setting_and_the_fixed_rules_hold_whatever_it_says() -> None:
    settings = Settings(pseudonym_pattern=r"^PX-\d{4}$")
    assert check_pseudonym("PX-0042", settings.pseudonym_pattern) == "PX-0042"
    assert _refusal("P-0001", settings.pseudonym_pattern) == (
        "pattern", f"pseudonym does not match this station's rule ^PX-\\d{{4}}$; {HINT}")
    anything = r"^.*$"
    assert _refusal("Hong Gildong", anything) == ("name", NAME)
    assert _refusal("P 1", anything) == ("whitespace", SPACES)
    assert _refusal("x" * 300, anything) == ("too_long", TOO_LONG)
    assert Settings().pseudonym_pattern == DEFAULT_PSEUDONYM_PATTERN
    with pytest.raises(ValueError, match="pseudonym_pattern is not a valid regular expression"):
        Settings(pseudonym_pattern="^[A-Z")


@pytest.fixture(params=BACKENDS)
def database(request: pytest.FixtureRequest, settings: Settings) -> Iterator[Database]:
    with open_backend(settings, request.param) as opened:
        yield opened


def _counts(database: Database) -> tuple[int, int]:
    with database.transaction() as session:
        return (session.scalar(select(func.count()).select_from(Patient)) or 0,
                session.scalar(select(func.count()).select_from(AuditEvent)) or 0)


def test_the_store_refuses_a_name_and_keeps_nothing(database: Database) -> None:
    store = StationStore(database)
    nurse = add_operator(database, "nurse", "staff")
    before = _counts(database)
    for value, message in (("Hong Gildong 1961-03-02", DATE_OF_BIRTH), ("홍길동", NAME),
                           ("P 0001", SPACES), ("P" * 300, TOO_LONG)):
        with pytest.raises(PseudonymError) as created:
            store.create_patient(value, actor_id=nurse)
        assert str(created.value) == message
        with pytest.raises(PseudonymError) as found:
            store.find_patient(value, actor_id=nurse)
        assert str(found.value) == message
    assert _counts(database) == before  # no patient, no audit row: nothing was looked up

    patient = store.create_patient("P-0001", actor_id=nurse)
    assert patient.pseudonym == "P-0001"
    found_patient = store.find_patient("P-0001", actor_id=nurse)
    assert found_patient is not None and found_patient.id == patient.id
    assert _counts(database) == (before[0] + 1, before[1] + 2)


def test_the_store_uses_the_station_pattern(settings: Settings) -> None:
    strict = settings.replace(pseudonym_pattern=r"^PX-\d{4}$")
    with open_backend(strict, "sqlite") as database:
        store = StationStore(database)
        nurse = add_operator(database, "nurse", "staff")
        with pytest.raises(PseudonymError, match="does not match this station's rule"):
            store.create_patient("P-0001", actor_id=nurse)
        assert store.create_patient("PX-0001", actor_id=nurse).pseudonym == "PX-0001"
        assert _counts(database)[0] == 1
