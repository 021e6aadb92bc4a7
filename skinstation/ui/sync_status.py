"""The tiny protocol the sync status panel reads (the sync package provides the real one).

Any object with a ``status()`` method qualifies; ``status()`` returns something with the
attributes (or mapping keys) ``queue_length``, ``last_success``, ``last_error`` and optionally
``refused_captures`` (capture id → reason) and ``state``, e.g. a :class:`SyncStatus`. A state
in :data:`NOT_READY` (no engine URL, not enrolled, database opening) means no sync can run.
If the object also has ``sync_now()``, the panel offers a "Sync now" button (hidden while not
ready; ``sync_now`` may return the status after the round); if it has
``retry_refused(session)`` (puts refused captures back in the queue, checking the session
may), administrators get a "Retry refused" button; if it has
``enroll(session, code, engine_url, ca_file)``, administrators of a station not enrolled get
an enrollment form. All are called in a worker thread, never on the GUI thread.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

NOT_CONFIGURED, NOT_ENROLLED, STARTING = "not_configured", "not_enrolled", "starting"
NOT_READY = frozenset({NOT_CONFIGURED, NOT_ENROLLED, STARTING})


@dataclass(frozen=True)
class SyncStatus:
    """A snapshot of the station's sync state.

    Attributes:
        queue_length: Captures waiting in the outbox.
        last_success: When the last sync succeeded (aware datetime), or None.
        last_error: The last error's message, or None after a success.
        refused_captures: Captures set aside as refused (capture id → reason), waiting for an
            administrator to retry them after a fix.
        state: The source's state word (e.g. ``idle``, ``offline``, or one of
            :data:`NOT_READY`); empty if the source does not say.
        last_error_text: ``(key, values)`` of ``last_error`` in the text catalogue, so the
            panel words it in the window's language; None: show ``last_error`` as it is.
    """

    queue_length: int
    last_success: dt.datetime | None = None
    last_error: str | None = None
    refused_captures: Mapping[int, str] = field(default_factory=dict)
    state: str = ""
    last_error_text: tuple[str, Mapping[str, Any]] | None = None

    @property
    def ready(self) -> bool:
        """Whether a sync round can run (configured, enrolled, database open)."""
        return self.state not in NOT_READY

    @classmethod
    def of(cls, value: Any) -> SyncStatus:
        """Read a status from an object with those attributes or a mapping with those keys."""
        if isinstance(value, SyncStatus):
            return value
        get = value.get if isinstance(value, Mapping) else lambda k, d=None: getattr(value, k, d)
        refused = get("refused_captures") or {}
        text = get("last_error_text")
        return cls(int(get("queue_length", 0) or 0), get("last_success"), get("last_error"),
                   {int(capture_id): str(reason) for capture_id, reason in refused.items()},
                   str(get("state") or ""),
                   (str(text[0]), dict(text[1])) if text and len(text) == 2 else None)

    def error_text(self, tr: Any) -> str:
        """``last_error`` in the language of ``tr`` (its stored words if it has no key)."""
        if self.last_error_text is not None:
            key, values = self.last_error_text
            try:
                return str(tr(key, **values))
            except (KeyError, IndexError, ValueError):
                pass  # a key of another version, or values that no longer fit: the words
        return self.last_error or ""


@runtime_checkable
class SyncStatusSource(Protocol):
    """What the sync status panel needs from the sync package."""

    def status(self) -> Any:
        """The current :class:`SyncStatus` (or an object/mapping with the same fields)."""
        ...
