"""History lines: one per capture action, a multispectral sequence being one line.

The store lists captures (one row per band frame). The history screen shows a sequence's
frames as ONE entry, represented by its classified frame (the white one, normally) and
listing its bands; the entry opens to every frame. Entries whose decision is suspected skin
cancer, or that are flagged for referral, are marked for highlighting. Qt-free.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from skinstation.storage import SKIN_CANCER, CaptureSummary

MAIN_BAND = "white"
"""The band a sequence is represented by when none of its frames was classified."""


def is_suspected(row: CaptureSummary) -> bool:
    """Whether a capture's latest prediction is suspected skin cancer or flagged for referral."""
    return row.decision == SKIN_CANCER or bool(row.referral)


@dataclass(frozen=True)
class HistoryEntry:
    """One capture action: a single capture, or every frame of one multispectral sequence.

    Attributes:
        main: The capture shown for the entry (a sequence's classified or white frame).
        frames: Every capture of the entry in band order (``(main,)`` for a single one).
    """

    main: CaptureSummary
    frames: tuple[CaptureSummary, ...]

    @property
    def is_sequence(self) -> bool:
        """Whether the entry is a multispectral sequence of several frames listed.

        (A filter, e.g. by decision, may list only one frame of a sequence: that is one line.)
        """
        return len(self.frames) > 1

    @property
    def other_bands(self) -> tuple[str, ...]:
        """The bands of the frames besides the main one, in band order."""
        return tuple(f.band for f in self.frames if f.capture_id != self.main.capture_id)

    @property
    def suspected(self) -> bool:
        """Whether any frame is suspected skin cancer or flagged for referral."""
        return any(is_suspected(frame) for frame in self.frames)

    @property
    def capture_ids(self) -> tuple[int, ...]:
        """Every capture id of the entry."""
        return tuple(frame.capture_id for frame in self.frames)


def _main_frame(frames: Sequence[CaptureSummary]) -> CaptureSummary:
    classified = [f for f in frames if f.decision is not None]
    white = [f for f in frames if f.band == MAIN_BAND]
    return (classified or white or list(frames))[0]


def group_history(rows: Iterable[CaptureSummary]) -> list[HistoryEntry]:
    """Group history rows into entries, keeping the rows' order (newest first).

    Frames sharing a ``multispectral_group_id`` become one entry, placed where the first of
    them appears; every other row is an entry of its own.
    """
    order: list[str | int] = []
    groups: dict[str | int, list[CaptureSummary]] = {}
    for row in rows:
        key: str | int = row.multispectral_group_id or row.capture_id
        if key not in groups:
            order.append(key)
            groups[key] = []
        groups[key].append(row)
    entries = []
    for key in order:
        frames = sorted(groups[key], key=lambda f: (f.multispectral_index or 0, f.capture_id))
        entries.append(HistoryEntry(_main_frame(frames), tuple(frames)))
    return entries
