"""Translatable texts (decisions, guidance, class names) from ``resources/i18n/<lang>.json``.

Errors raised below the UI that a person reads (a wrong password, a sync refusal, the LED
controller not answering) are :class:`TranslatableError`: they carry a text key and its values,
so each front end shows them in its own language; ``str()`` is the English text (logs, CLI).
"""

from __future__ import annotations

import json
from functools import lru_cache
from typing import Any

from skinstation.resources import I18N_DIR

LANGUAGES = ("en", "ko")


@lru_cache(maxsize=8)
def _catalogue(language: str) -> dict[str, str]:
    if language not in LANGUAGES:
        raise ValueError(f"unsupported language {language!r} (supported: {', '.join(LANGUAGES)})")
    path = I18N_DIR / f"{language}.json"
    catalogue: dict[str, str] = json.loads(path.read_text(encoding="utf-8"))
    return catalogue


def text(key: str, language: str = "en") -> str:
    """Return the text for ``key`` in ``language``.

    Raises:
        KeyError: If the key is missing (every language must define every key).
    """
    catalogue = _catalogue(language)
    if key not in catalogue:
        raise KeyError(f"text {key!r} missing for language {language!r}")
    return catalogue[key]


def keys(language: str = "en") -> set[str]:
    """All text keys defined for ``language``."""
    return set(_catalogue(language))


class TranslatableError(Exception):
    """An error whose message is a text of the catalogue.

    Args:
        key: The text key (defined in every language).
        **values: The values the text is formatted with (plain numbers and strings).

    Attributes:
        text_key: The key.
        text_values: The values.
    """

    def __init__(self, key: str, **values: Any) -> None:
        self.text_key = key
        self.text_values = values
        super().__init__(text(key, "en").format(**values))

    def translated(self, language: str) -> str:
        """The message in ``language``."""
        return text(self.text_key, language).format(**self.text_values)


PLAIN_KEY = "error.plain"
"""The text ``{message}``: an error raised with a sentence instead of a key shows it as it is."""


class KeyedError(TranslatableError):
    """A :class:`TranslatableError` that also accepts a plain English sentence.

    For error classes raised in many places: each raise gives a key (``error.*``); one still
    raised with a sentence (not a key) shows that sentence as it is, in every language.

    Args:
        key: The text key, or a plain sentence.
        **values: The values of the text (ignored for a sentence).
    """

    def __init__(self, key: str, **values: Any) -> None:
        if key not in keys("en"):
            key, values = PLAIN_KEY, {"message": key}
        super().__init__(key, **values)
