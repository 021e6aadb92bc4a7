"""Writing one capture out from the history: its referral report (PDF), DICOM file, FHIR bundle.

The buttons ask for a destination (a file dialog; tests replace :attr:`CaptureExportBar.
pick_destination`), then call the Qt-free services in the data thread
(:func:`skinstation.services.report.capture_report`,
:func:`skinstation.services.export.export_capture_dicom` and
:func:`~skinstation.services.export.export_capture_fhir`, each audited) and say in the message
bar where the file went, or why nothing was written.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from PySide6.QtWidgets import QFileDialog, QHBoxLayout, QWidget

from skinstation.auth import can_view_history
from skinstation.services.export import export_capture_dicom, export_capture_fhir
from skinstation.services.report import capture_report
from skinstation.storage import CaptureSummary
from skinstation.ui.context import StationContext
from skinstation.ui.widgets.common import MessageBar, make_button, set_button_text

KINDS = ("report", "dicom", "fhir")
"""What the bar writes: a PDF file, a DICOM file into a folder, a FHIR JSON file."""

PickDestination = Callable[[str, Path], Path | None]
"""``(kind, suggested) -> chosen path`` (None: cancelled); a folder for ``dicom``."""


class CaptureExportBar(QWidget):
    """"Report (PDF)", "Export DICOM" and "Export FHIR" for the capture chosen in a list.

    Args:
        ctx: The station context (service, session, language, worker threads).
        message: The screen's message bar (progress, success, error).
        parent: Parent widget.

    Attributes:
        pick_destination: Asks where to write (see :data:`PickDestination`).
        last_path: The file written last (None before the first).
    """

    def __init__(self, ctx: StationContext, message: MessageBar,
                 parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.ctx = ctx
        self.message = message
        self.capture: CaptureSummary | None = None
        self.busy = False
        self.last_path: Path | None = None
        self.pick_destination: PickDestination = self._pick_destination
        self.buttons = {kind: make_button(name, "", self) for kind, name in (
            ("report", "historyReport"), ("dicom", "historyDicom"), ("fhir", "historyFhir"))}
        self.report_button, self.dicom_button, self.fhir_button = self.buttons.values()
        for kind, button in self.buttons.items():
            button.clicked.connect(lambda _checked=False, k=kind: self.export(k))
        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addStretch(1)
        for button in self.buttons.values():
            layout.addWidget(button)
        self._update_state()

    def retranslate(self) -> None:
        """Set the buttons' texts in the window's language."""
        tr = self.ctx.tr
        for kind, button in self.buttons.items():
            set_button_text(button, tr(f"ui.history.{kind}"), tr("ui.history.export_help"))

    def set_capture(self, capture: CaptureSummary | None) -> None:
        """The capture the buttons write (None: not exactly one chosen)."""
        self.capture = capture
        self._update_state()

    def _update_state(self) -> None:
        enabled = (self.capture is not None and not self.busy
                   and self.ctx.allows(can_view_history))
        for button in self.buttons.values():
            button.setEnabled(enabled)

    # -- destination ----------------------------------------------------------------------

    def suggested(self, kind: str, capture: CaptureSummary) -> Path:
        """Where the dialog starts: ``<home>/reports`` for a PDF, ``<home>/exports`` else."""
        home = Path(self.ctx.settings.home)
        if kind == "report":
            return home / "reports" / f"capture-{capture.capture_uid}.pdf"
        if kind == "dicom":
            return home / "exports"
        return home / "exports" / f"capture-{capture.capture_uid}.fhir.json"

    def _pick_destination(self, kind: str, suggested: Path) -> Path | None:
        tr = self.ctx.tr
        if kind == "dicom":
            suggested.mkdir(parents=True, exist_ok=True)
            folder = QFileDialog.getExistingDirectory(self, tr("ui.history.dicom_title"),
                                                      str(suggested))
            return Path(folder) if folder else None
        suggested.parent.mkdir(parents=True, exist_ok=True)
        title, wanted = (("ui.history.report_title", "ui.history.pdf_filter") if kind == "report"
                         else ("ui.history.fhir_title", "ui.history.json_filter"))
        path, _filter = QFileDialog.getSaveFileName(self, tr(title), str(suggested), tr(wanted))
        return Path(path) if path else None

    # -- writing --------------------------------------------------------------------------

    def export(self, kind: str) -> None:
        """Ask where, then write the capture's ``kind`` (see :data:`KINDS`) off the GUI thread."""
        capture = self.capture
        if capture is None or self.busy or self.ctx.service is None or self.ctx.session is None:
            return
        try:
            destination = self.pick_destination(kind, self.suggested(kind, capture))
        except OSError as error:
            self._failed(self.ctx.describe(error))
            return
        if destination is None:
            return  # cancelled
        service, session, language = self.ctx.service, self.ctx.session, self.ctx.language
        capture_id = capture.capture_id
        work: Callable[[], Any]
        if kind == "report":
            def work() -> Path:
                return capture_report(service, session, capture_id, destination, language)
        elif kind == "dicom":
            def work() -> Path:
                return export_capture_dicom(service, capture_id, destination, session=session)
        else:
            def work() -> Path:
                export_capture_fhir(service, capture_id, destination, session=session)
                return destination
        self.busy = True
        self._update_state()
        self.message.show_message(self.ctx.tr("ui.history.exporting"), "info")
        self.ctx.run_data(work, lambda path: self._written(kind, path), self._failed)

    def _written(self, kind: str, path: Path) -> None:
        self.busy = False
        self.last_path = Path(path)
        self._update_state()
        self.message.show_message(self.ctx.tr(f"ui.history.{kind}_written", path=str(path)),
                                  "success")

    def _failed(self, detail: str) -> None:
        self.busy = False
        self._update_state()
        self.message.error(self.ctx.tr("ui.history.export_failed", detail=detail))

    def reset(self) -> None:
        """Forget the capture and the last file (logout)."""
        self.capture, self.busy, self.last_path = None, False, None
        self._update_state()
