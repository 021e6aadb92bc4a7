"""Translatable texts (decisions, guidance, class names) from ``resources/i18n/<lang>.json``."""

from __future__ import annotations

import json
from functools import lru_cache

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
