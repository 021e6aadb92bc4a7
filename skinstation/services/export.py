"""Export captures to hospital systems: DICOM files, C-STORE to a PACS, FHIR bundles.

Reads a capture with its patient, visit and latest prediction from the station database
into an :class:`~skinstation.interop.records.ExportCapture` (the patient's name only when
``interop.send_patient_names`` is on), hands it to the pure builders of
:mod:`skinstation.interop`, and writes one audit row per export or send
(``capture.exported`` / ``capture.sent``) naming the format and the destination, never
patient data. Called with an operator's session (permission ``can_view_history``) by the
UI, or without one by the station CLI, which runs with the rights of the OS user who owns
the database (audited as the system).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from sqlalchemy import select

from skinstation import __version__
from skinstation.auth import Session, can_view_history
from skinstation.inference.preprocessing import decode_image
from skinstation.interop import dicom, fhir, pacs
from skinstation.interop.records import ExportCapture, ExportPrediction
from skinstation.services.station import StationService
from skinstation.storage import AuditAction, Capture, NotFoundError, Patient, Visit

_MEDIA_TYPES = {"png": "image/png", "jpg": "image/jpeg", "tif": "image/tiff", "bmp": "image/bmp",
                "webp": "image/webp"}
_LOSSY = ("jpg", "webp")  # a WebP may be lossless: call it lossy rather than wrongly not


def _actor(service: StationService, session: Session | None) -> int | None:
    if session is None:
        return None
    service.auth.require(session, can_view_history)
    return session.operator_id


def load_export_record(service: StationService, capture_id: int) -> ExportCapture:
    """Read what an export needs about one capture (the image's sha256 is checked).

    Raises:
        NotFoundError: If there is no such capture.
        ImageMissingError, ImageIntegrityError: If its image file is gone or altered.
    """
    with service.database.transaction() as db:
        row = db.execute(
            select(Capture, Visit, Patient)
            .join(Visit, Visit.id == Capture.visit_id)
            .join(Patient, Patient.id == Visit.patient_id)
            .where(Capture.id == capture_id)).first()
        if row is None:
            raise NotFoundError(f"capture {capture_id} not found")
        capture, visit, patient = row
        visit_number = int(visit.number)
        name = patient.name if service.settings.interop.send_patient_names else None
        pseudonym = patient.pseudonym
    image = service.database.images.read(capture.image_ref, capture.image_sha256)
    stored = service.store.latest_prediction(capture_id)
    prediction = None
    if stored is not None:
        prediction = ExportPrediction(
            model_version=str(stored["model_version"]), decision=str(stored["decision"]),
            referral=stored["referral"],  # type: ignore[arg-type]
            group_probabilities=dict(stored["group_probabilities"]),  # type: ignore[call-overload]
            created_at=stored["created_at"])  # type: ignore[arg-type]
    image_format = capture.image_format.lower()
    return ExportCapture(
        capture_id=capture.id, capture_uid=capture.uid, station_id=capture.station_id,
        device_id=capture.device_id, band=capture.band, body_site=capture.body_site,
        capture_time=capture.capture_time,
        pixels=decode_image(image, name=f"capture {capture.id}"), image=image,
        image_media_type=_MEDIA_TYPES.get(image_format, "application/octet-stream"),
        lossy=image_format in _LOSSY, patient_pseudonym=pseudonym,
        patient_name=name or None, visit_uid=visit.uid or str(visit.id),
        visit_number=visit_number, visit_opened_at=visit.opened_at,
        multispectral_group_id=capture.multispectral_group_id,
        multispectral_index=capture.multispectral_index, prediction=prediction,
        software_version=__version__)


def _optics(service: StationService) -> dicom.DermoscopeOptics:
    settings = service.settings.interop
    return dicom.DermoscopeOptics(settings.contact_method, tuple(settings.immersion_media),
                                  settings.optical_magnification)


def _audit(service: StationService, actor_id: int | None, action: AuditAction,
           capture_id: int, detail: dict[str, Any]) -> None:
    service.store.audit(actor_id, action, entity_type="capture", entity_id=capture_id,
                        detail=detail)


def export_capture_dicom(service: StationService, capture_id: int, out_dir: Path, *,
                         session: Session | None = None) -> Path:
    """Write one capture as a Dermoscopic Photography DICOM file in ``out_dir`` (audited).

    Returns:
        The file (``<SOP Instance UID>.dcm``), read back and checked for every required
        attribute of the modules written.
    """
    actor_id = _actor(service, session)
    record = load_export_record(service, capture_id)
    path = dicom.write_capture(record, _optics(service), Path(out_dir))
    _audit(service, actor_id, AuditAction.CAPTURE_EXPORTED, capture_id,
           {"format": "dicom", "file": path.name, "names": record.patient_name is not None})
    return path


def export_capture_fhir(service: StationService, capture_id: int,
                        out_file: Path | None = None, *,
                        session: Session | None = None) -> fhir.Bundle:
    """Build (and write to ``out_file`` when given) a capture's FHIR report bundle (audited).

    Returns:
        The validated transaction Bundle; every reference resolves inside it.

    Raises:
        ValueError: If a reference does not resolve inside the bundle (a bug).
    """
    actor_id = _actor(service, session)
    record = load_export_record(service, capture_id)
    bundle = fhir.build_bundle(record)
    unresolved = fhir.references_outside(bundle)
    if unresolved:
        raise ValueError(f"references outside the bundle: {unresolved}")
    if out_file is not None:
        out_file = Path(out_file)
        out_file.parent.mkdir(parents=True, exist_ok=True)
        out_file.write_text(fhir.bundle_json(bundle), encoding="utf-8")
    _audit(service, actor_id, AuditAction.CAPTURE_EXPORTED, capture_id,
           {"format": "fhir", "file": None if out_file is None else out_file.name,
            "names": record.patient_name is not None})
    return bundle


def send_fhir(service: StationService, capture_id: int, bundle: fhir.Bundle,
              url: str | None = None, *, session: Session | None = None) -> dict[str, Any]:
    """POST a capture's bundle to the FHIR server (``interop.fhir_url`` by default; audited).

    Raises:
        ValueError: If no FHIR server URL is set.
        FhirError: If the server is unreachable or refuses the bundle.
    """
    actor_id = _actor(service, session)
    target = url or service.settings.interop.fhir_url
    if not target:
        raise ValueError("no FHIR server configured (set interop.fhir_url)")
    answer = fhir.post_bundle(target, bundle,
                              timeout=service.settings.interop.fhir_timeout_seconds)
    _audit(service, actor_id, AuditAction.CAPTURE_SENT, capture_id,
           {"format": "fhir", "to": target})
    return answer


def send_dicom(service: StationService, capture_id: int, files: Sequence[Path], *,
               host: str | None = None, port: int | None = None,
               ae_title: str | None = None,
               session: Session | None = None) -> pacs.StoreResult:
    """C-STORE a capture's exported files to the PACS (``interop.pacs_*`` by default; audited).

    Raises:
        ValueError: If no PACS host is set.
        PacsError: If the PACS cannot be reached or refuses a file.
    """
    actor_id = _actor(service, session)
    settings = service.settings.interop
    host = host or settings.pacs_host
    if not host:
        raise ValueError("no PACS configured (set interop.pacs_host)")
    port = port or settings.pacs_port
    ae_title = ae_title or settings.pacs_ae_title
    result = pacs.send_files(host, port, ae_title, files,
                             calling_ae_title=settings.station_ae_title)
    _audit(service, actor_id, AuditAction.CAPTURE_SENT, capture_id,
           {"format": "dicom", "to": f"{ae_title}@{host}:{port}",
            "instances": list(result.sent)})
    return result
