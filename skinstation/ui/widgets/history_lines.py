"""The cells of one history line: a capture, a multispectral sequence, or one of its frames.

Suspected skin cancer and referral lines are coloured AND marked with a symbol (and a tooltip
saying what it means), so colour is never the only cue.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping

from PySide6.QtCore import Qt
from PySide6.QtGui import QBrush, QColor, QFont, QIcon, QPixmap
from PySide6.QtWidgets import QTableWidgetItem

from skinstation.services.history import HistoryEntry, is_suspected
from skinstation.storage import CaptureSummary
from skinstation.ui.widgets.capture_view import local_time
from skinstation.ui.widgets.common import text_or

DECISION_SYMBOLS = {"skin_cancer": "▲", "indeterminate": "◆", "other_disease": "■",
                    "benign": "●", "not_assessable": "○"}
COLUMNS = ("thumbnail", "time", "patient", "visit", "site", "band", "decision", "review",
           "label", "note")
SUSPECTED_SYMBOL = "⚠"
"""Marks a highlighted line (suspected skin cancer or referral) besides its colour."""
SUSPECTED_BACKGROUND = QColor("#fde2e1")
SUSPECTED_FOREGROUND = QColor("#7a0c0c")


def decision_words(tr: Callable[..., str], decision: str | None,
                   referral: bool | None = None) -> str:
    """Symbol and words of a decision (and the referral flag, shortened) for lists."""
    if not decision:
        return tr("ui.history.no_prediction")
    words = f"{DECISION_SYMBOLS.get(decision, '')} {tr(f'decision.{decision}')}"
    return words + (f" · ▲ {tr('ui.history.referral')}" if referral else "")


def legend_text(tr: Callable[..., str]) -> str:
    """What a highlighted line means, starting with its symbol."""
    return f"{SUSPECTED_SYMBOL} {tr('ui.history.legend')}"


def line_items(tr: Callable[..., str], entry: HistoryEntry, summary: CaptureSummary, *,
               expanded: Collection[int], thumbs: Mapping[int, QPixmap]
               ) -> list[QTableWidgetItem]:
    """The items of one line, in :data:`COLUMNS` order.

    Args:
        tr: Translation function.
        entry: The capture action the line belongs to.
        summary: The capture of the line: ``entry.main``, or (an opened sequence) one frame.
        expanded: Main capture ids of the sequences shown with all their frames.
        thumbs: Loaded thumbnails by capture id.
    """
    is_main = summary is entry.main
    sequence = is_main and entry.is_sequence
    suspected = entry.suspected if is_main else is_suspected(summary)
    marker = ("▾ " if summary.capture_id in expanded else "▸ ") if sequence else (
        "" if is_main else "    ↳ ")
    thumb = QTableWidgetItem(f"{marker}{SUSPECTED_SYMBOL + ' ' if suspected else ''}"
                             f"#{summary.capture_id}")
    if summary.capture_id in thumbs:
        thumb.setIcon(QIcon(thumbs[summary.capture_id]))
    thumb.setData(Qt.ItemDataRole.UserRole, summary.capture_id)
    band = text_or(tr, f"ui.band.{summary.band}", summary.band)
    if sequence:
        band = tr("ui.history.bands", band=band, count=len(entry.other_bands))
    label = (f"{tr(f'class.{summary.final_label}')} ({summary.final_label})"
             if summary.final_label else "—")
    note = summary.note or ""
    if summary.review_note:
        review = tr("ui.history.review_note", note=summary.review_note)
        note = f"{note} · {review}" if note else review
    texts = [local_time(summary.capture_time), summary.pseudonym, str(summary.visit_number),
             text_or(tr, f"ui.site.{summary.body_site}", summary.body_site), band,
             decision_words(tr, summary.decision, summary.referral),
             tr(f"ui.review_state.{summary.review_state.value}"), label, note or "—"]
    items = [thumb] + [QTableWidgetItem(text) for text in texts]
    if sequence:
        bands = ", ".join(text_or(tr, f"ui.band.{b}", b) for b in entry.other_bands)
        items[COLUMNS.index("band")].setToolTip(bands)
    if note:
        items[COLUMNS.index("note")].setToolTip(note)
    if suspected:
        legend = legend_text(tr)
        for item in items:
            item.setBackground(QBrush(SUSPECTED_BACKGROUND))
            item.setForeground(QBrush(SUSPECTED_FOREGROUND))
            item.setToolTip("\n".join(t for t in (item.toolTip(), legend) if t))
        decision = items[COLUMNS.index("decision")]
        font = QFont(decision.font())
        font.setBold(True)
        decision.setFont(font)
    return items
