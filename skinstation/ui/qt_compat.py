"""Guard against PySide6 6.12.0's reference-counting bug on CPython 3.11.

PySide6 6.12.0 hands out ``None``, ``True`` and ``False`` without taking a reference (safe
only where they are immortal, i.e. CPython 3.12 and later): every void method call, every
``Signal.emit`` and every event delivered to a Python override lowers their reference counts,
and after some thousands of calls (seconds of live preview) CPython 3.11 aborts with
"none_dealloc: deallocating None" or "bool_dealloc". PySide6 6.11 is not affected.

:func:`install` measures once whether the installed PySide6 leaks; only then does it make
the three singletons effectively immortal, as CPython 3.12 does, by adding 2**60 to their
reference counts (at a million leaked references a second that lasts tens of thousands of
years). It runs when :mod:`skinstation.ui` is imported. The real fix is a PySide6 release
without the bug (pin ``pyside6-essentials<6.12`` on Python 3.11); then this is a no-op.
"""

from __future__ import annotations

import ctypes
import sys

from PySide6.QtCore import QObject

IMMORTAL_BOOST = 1 << 60
_PROBE_CALLS = 64
_installed = False


def _refcounts() -> tuple[int, int, int]:
    return sys.getrefcount(None), sys.getrefcount(True), sys.getrefcount(False)


def singletons_leak() -> bool:
    """Whether a void PySide6 call drops a reference to ``None`` (the 6.12.0 bug)."""
    probe = QObject()
    before = _refcounts()[0]
    for _ in range(_PROBE_CALLS):
        probe.setObjectName("probe")
    lost = before - _refcounts()[0]
    return lost >= _PROBE_CALLS // 2


def install() -> bool:
    """Make ``None``/``True``/``False`` immortal if PySide6 leaks them; returns whether it did."""
    global _installed
    if _installed:
        return True
    if sys.version_info >= (3, 12) or not singletons_leak():
        return False
    for singleton in (None, True, False):
        ctypes.c_ssize_t.from_address(id(singleton)).value += IMMORTAL_BOOST
    _installed = True
    return True
