"""Errors raised below the UI carry a text key, so the window shows them in its language."""

from __future__ import annotations

import pytest

from skinstation.core.i18n import TranslatableError, text
from skinstation.ui.errors import describe_error


def _tr(language: str):
    def tr(key: str, **values: object) -> str:
        value = text(key, language)
        return value.format(**values) if values else value
    return tr


@pytest.mark.parametrize("language", ["en", "ko"])
def test_a_translatable_error_is_shown_in_the_window_language(language: str) -> None:
    error = TranslatableError("ui.error.database_locked")
    assert describe_error(error, _tr(language)) == text("ui.error.database_locked", language)
    assert str(error) == text("ui.error.database_locked", "en")


def test_a_key_missing_from_the_catalogue_fails_at_once() -> None:
    with pytest.raises(KeyError, match=r"no\.such\.key"):
        TranslatableError("no.such.key")
