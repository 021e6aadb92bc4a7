"""The TrueType font a referral report embeds: from the ``report_font`` setting or the system.

A Korean report needs a font with Hangul; reportlab embeds TrueType outlines only (``.ttf``,
or a ``.ttc`` collection of them), so the CFF-based Noto Sans CJK ``.otf`` files do not count.
With ``report_font`` empty, the usual system font folders are searched for NanumGothic, Noto
Sans KR / CJK (TrueType builds), Malgun Gothic (Windows), Apple SD Gothic Neo, Baekmuk or
UnDotum. An English report prefers the same fonts (an operator's note may be in Korean), then
DejaVu Sans / Liberation Sans / Arial, and only without any of them falls back to Helvetica.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from reportlab.pdfbase import pdfmetrics
from reportlab.pdfbase.ttfonts import TTFError, TTFont

from skinstation.core.i18n import TranslatableError

HANGUL_PROBE = "가한글의뢰"
"""Letters a font must have to write a Korean report."""

HANGUL_FONT_FILES: tuple[str, ...] = (
    "NanumGothic.ttf", "NanumBarunGothic.ttf", "NotoSansKR-Regular.ttf", "NotoSansKR[wght].ttf",
    "NotoSansCJKkr-Regular.ttf", "NotoSansCJK-Regular.ttc", "malgun.ttf", "MalgunGothic.ttf",
    "AppleSDGothicNeo.ttc", "AppleGothic.ttf", "gulim.ttc", "UnDotum.ttf", "dotum.ttf",
    "baekmuk-dotum.ttf",
)
"""Hangul TrueType fonts looked for, most wanted first (file names, case-insensitive)."""

LATIN_FONT_FILES: tuple[str, ...] = (
    "DejaVuSans.ttf", "LiberationSans-Regular.ttf", "arial.ttf", "Arial.ttf",
)
"""Fonts an English report may use when no Hangul font is found."""

BUILTIN = "Helvetica"
BUILTIN_BOLD = "Helvetica-Bold"


@dataclass(frozen=True)
class ReportFont:
    """A font registered with reportlab for a report.

    Attributes:
        name: The registered regular face (``Helvetica`` for the built-in fallback).
        bold: The registered bold face (the regular one when there is no bold file).
        path: The TrueType file embedded (None for the built-in font).
        hangul: Whether it has Hangul letters.
    """

    name: str
    bold: str
    path: Path | None
    hangul: bool


def font_folders() -> list[Path]:
    """The usual system and user font folders of Linux, macOS and Windows that exist."""
    home = Path.home()
    folders = [Path("/usr/share/fonts"), Path("/usr/local/share/fonts"),
               home / ".local/share/fonts", home / ".fonts", Path("/Library/Fonts"),
               Path("/System/Library/Fonts"), home / "Library/Fonts"]
    windows = os.environ.get("WINDIR") or os.environ.get("SYSTEMROOT")
    if windows:
        folders.append(Path(windows) / "Fonts")
    if os.environ.get("LOCALAPPDATA"):
        folders.append(Path(os.environ["LOCALAPPDATA"]) / "Microsoft/Windows/Fonts")
    return [folder for folder in folders if folder.is_dir()]


def _font_files(folders: tuple[Path, ...]) -> dict[str, Path]:
    """Lower-cased file name → first path with that name under ``folders``.

    Not cached: a font installed after a refused Korean report is found on the next try.
    """
    found: dict[str, Path] = {}
    for folder in folders:
        for root, _dirs, files in os.walk(folder):
            for name in files:
                if name.lower().endswith((".ttf", ".ttc")):
                    found.setdefault(name.lower(), Path(root) / name)
    return found


def find_fonts(names: Iterable[str], folders: Sequence[Path] | None = None) -> list[Path]:
    """The files of ``names`` found in ``folders`` (default :func:`font_folders`), in order."""
    files = _font_files(tuple(font_folders() if folders is None else folders))
    return [files[name.lower()] for name in names if name.lower() in files]


@lru_cache(maxsize=16)
def _load(path: Path) -> tuple[str, bool]:
    """Register the TrueType file ``path``; return its reportlab name and Hangul coverage."""
    name = f"Report-{path.stem}-{hashlib.sha256(str(path).encode()).hexdigest()[:8]}"
    try:
        font = TTFont(name, str(path), subfontIndex=0)
    except (TTFError, OSError, ValueError, KeyError, IndexError) as error:
        raise OSError(f"{path}: {error}") from error
    pdfmetrics.registerFont(font)
    glyphs = font.face.charToGlyph
    return name, all(ord(letter) in glyphs for letter in HANGUL_PROBE)


def _bold_of(path: Path) -> str | None:
    """The registered bold sibling of a regular font file (``NanumGothicBold.ttf``...)."""
    stem, suffix = path.stem, path.suffix
    candidates = [f"{stem}Bold{suffix}", f"{stem}-Bold{suffix}",
                  f"{stem.replace('Regular', 'Bold')}{suffix}", f"{stem}bd{suffix}"]
    for candidate in candidates:
        sibling = path.with_name(candidate)
        if sibling != path and sibling.is_file():
            try:
                return _load(sibling)[0]
            except OSError:
                continue
    return None


def _font(path: Path) -> ReportFont:
    name, hangul = _load(path)
    return ReportFont(name, _bold_of(path) or name, path, hangul)


def report_font(setting: str, language: str,
                folders: Sequence[Path] | None = None) -> ReportFont:
    """The font a report in ``language`` is written with.

    Args:
        setting: The ``report_font`` setting (a file path, or "" to search the system).
        language: ``en`` or ``ko``.
        folders: Font folders to search (default :func:`font_folders`).

    Raises:
        TranslatableError: ``error.report_font_unreadable`` when the set file cannot be used;
            ``error.report_font_no_hangul`` when it has no Hangul for a Korean report;
            ``error.report_font_missing`` when no Hangul font is found for a Korean report.
    """
    if setting.strip():
        path = Path(setting).expanduser()
        try:
            font = _font(path)
        except OSError:
            raise TranslatableError("error.report_font_unreadable", path=str(path)) from None
        if language == "ko" and not font.hangul:
            raise TranslatableError("error.report_font_no_hangul", path=str(path))
        return font
    for path in find_fonts(HANGUL_FONT_FILES, folders):
        try:
            font = _font(path)
        except OSError:
            continue  # e.g. a collection of PostScript outlines reportlab cannot embed
        if font.hangul:
            return font
    if language == "ko":
        raise TranslatableError("error.report_font_missing")
    for path in find_fonts(LATIN_FONT_FILES, folders):
        try:
            return _font(path)
        except OSError:
            continue
    return ReportFont(BUILTIN, BUILTIN_BOLD, None, False)
