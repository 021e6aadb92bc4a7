"""Before a capture: why it cannot happen now, and what to do with a result not yet saved.

Both questions are asked the same way whether the operator pressed the button, the space
bar or the foot pedal, so a key press never fails silently and never drops a result.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

from PySide6.QtWidgets import QMessageBox, QPushButton, QWidget

from skinstation.ui.camera_worker import SourceInfo
from skinstation.ui.context import VisitState

ReplaceChoice = Literal["save", "discard", "cancel"]
"""What the operator chose for an unsaved result: keep it to save, drop it, or do nothing."""

ConfirmReplace = Callable[[], ReplaceChoice]
"""Asks the operator about an unsaved result (the capture screen's ``confirm_replace``)."""

Translate = Callable[..., str]

REPLACE_BUTTONS: dict[ReplaceChoice, tuple[str, str]] = {
    "save": ("replaceSave", "ui.capture.unsaved_save"),
    "discard": ("replaceDiscard", "ui.capture.unsaved_discard"),
    "cancel": ("replaceCancel", "ui.capture.unsaved_cancel"),
}
"""Object name and text key of the dialog's buttons, by the choice each one stands for."""


def not_ready_reason(visit: VisitState | None, source: SourceInfo | None, camera_error: str,
                     busy: bool) -> str:
    """The i18n key saying why a capture cannot be taken now ("" when it can).

    Args:
        visit: The open visit, if any.
        source: The open frame source (None while the camera opens or after it failed).
        camera_error: The camera's last error, "" when it works.
        busy: A capture or sequence is in progress.

    Returns:
        A key of the ``ui.capture.not_ready_*`` family, or "" if nothing stands in the way.
    """
    if visit is None or not visit.body_site:
        return "ui.capture.not_ready_visit"
    if camera_error:
        return "ui.capture.not_ready_camera_error"
    if source is None:
        return "ui.capture.not_ready_camera"
    if busy:
        return "ui.capture.not_ready_busy"
    return ""


def ask_replace(parent: QWidget, tr: Translate) -> ReplaceChoice:
    """Ask whether an unsaved result may be replaced by a new capture (modal).

    Args:
        parent: The dialog's parent window.
        tr: The station's translation function.

    Returns:
        ``"save"`` (keep it and go save it), ``"discard"`` (drop it and capture) or
        ``"cancel"`` (keep it, capture nothing). Closing the box counts as cancel.
    """
    box = QMessageBox(parent)
    box.setObjectName("replaceUnsaved")
    box.setIcon(QMessageBox.Icon.Warning)
    box.setWindowTitle(tr("ui.capture.unsaved_title"))
    box.setText(tr("ui.capture.unsaved_text"))
    roles = {"save": QMessageBox.ButtonRole.AcceptRole,
             "discard": QMessageBox.ButtonRole.DestructiveRole,
             "cancel": QMessageBox.ButtonRole.RejectRole}
    buttons: dict[ReplaceChoice, QPushButton] = {}
    for choice, (name, key) in REPLACE_BUTTONS.items():
        button = box.addButton(tr(key), roles[choice])
        button.setObjectName(name)
        button.setAccessibleName(button.text())
        buttons[choice] = button
    box.setDefaultButton(buttons["save"])  # Enter or a second space bar loses nothing
    box.setEscapeButton(buttons["cancel"])
    box.exec()
    clicked = box.clickedButton()
    box.deleteLater()
    return next((choice for choice, button in buttons.items() if button is clicked), "cancel")
