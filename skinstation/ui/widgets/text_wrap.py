"""Wrapping text for custom-painted widgets onto lines that fit (issue 19, point 12).

Painted widgets (the probability bars, the band thumbnails' captions) wrap a long text
instead of cutting it off; only a text needing more than ``max_lines`` lines is shortened,
and the widget lists it in its ``elided_texts()`` (the layout check reads it).
"""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtGui import QFont, QFontMetrics, QTextLayout, QTextOption


def wrap_text(font: QFont, text: str, width: int, max_lines: int) -> tuple[list[str], bool]:
    """``text`` in lines of at most ``width`` pixels, and whether it had to be shortened.

    Lines break at word boundaries (within a word only when one word is wider than
    ``width``); beyond ``max_lines`` the last line ends in "…".

    Args:
        font: The font the text is drawn in.
        text: The text.
        width: The width of a line in pixels.
        max_lines: The most lines the text may take (at least 1).
    """
    metrics = QFontMetrics(font)
    width = max(1, width)
    if metrics.horizontalAdvance(text) <= width:
        return [text], False
    option = QTextOption()
    option.setWrapMode(QTextOption.WrapMode.WrapAtWordBoundaryOrAnywhere)
    layout = QTextLayout(text, font)
    layout.setTextOption(option)
    layout.beginLayout()
    lines: list[str] = []
    while True:
        line = layout.createLine()
        if not line.isValid():
            break
        line.setLineWidth(width)
        lines.append(text[line.textStart():line.textStart() + line.textLength()].strip())
    layout.endLayout()
    lines = [line for line in lines if line] or [text]
    max_lines = max(1, max_lines)
    if len(lines) <= max_lines:
        return lines, False
    rest = " ".join(lines[max_lines - 1:])
    return [*lines[:max_lines - 1],
            metrics.elidedText(rest, Qt.TextElideMode.ElideRight, width)], True
