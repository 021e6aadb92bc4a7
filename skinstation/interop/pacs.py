"""Send exported DICOM files to a PACS by C-STORE (pynetdicom, one association)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from pydicom import dcmread
from pynetdicom import AE

from skinstation.interop.dicom import SOP_CLASS_UID


class PacsError(RuntimeError):
    """The PACS could not be reached or refused a file; the message says which."""


@dataclass(frozen=True)
class StoreResult:
    """What a C-STORE round gave.

    Attributes:
        sent: SOP Instance UIDs the PACS accepted (status 0x0000 or a warning).
        statuses: SOP Instance UID → the DIMSE status of its C-STORE.
    """

    sent: tuple[str, ...]
    statuses: dict[str, int]


def send_files(host: str, port: int, ae_title: str, files: Sequence[Path], *,
               calling_ae_title: str = "SKINSTATION", timeout: float = 30.0) -> StoreResult:
    """C-STORE every file to the SCP at ``host:port`` called ``ae_title``.

    Args:
        host: The PACS's address.
        port: Its DICOM port.
        ae_title: Its AE title (the called AE).
        files: Dermoscopic Photography files written by :func:`.dicom.write_capture`.
        calling_ae_title: This station's AE title.
        timeout: Seconds to wait for the association and each response.

    Returns:
        The accepted instances and every status.

    Raises:
        PacsError: If no association was made, or a file was refused or got no response.
    """
    if not files:
        return StoreResult((), {})
    ae = AE(ae_title=calling_ae_title)
    ae.add_requested_context(SOP_CLASS_UID)
    ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = timeout
    assoc = ae.associate(host, port, ae_title=ae_title)
    if not assoc.is_established:
        raise PacsError(f"no DICOM association with {ae_title}@{host}:{port} "
                        "(refused, aborted or unreachable)")
    statuses: dict[str, int] = {}
    failures: list[str] = []
    try:
        for path in files:
            ds = dcmread(path)
            uid = str(ds.SOPInstanceUID)
            status = assoc.send_c_store(ds)
            if not status or "Status" not in status:
                failures.append(f"{path.name}: no response")
                continue
            statuses[uid] = int(status.Status)
            if statuses[uid] != 0 and not 0xB000 <= statuses[uid] <= 0xBFFF:
                failures.append(f"{path.name}: status 0x{statuses[uid]:04X}")
    finally:
        assoc.release()
    if failures:
        raise PacsError(f"{ae_title}@{host}:{port} did not store: {'; '.join(failures)}")
    return StoreResult(tuple(statuses), statuses)
