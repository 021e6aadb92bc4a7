"""Station admin commands: audit, backup, restore, patient erase, keys rotate, export, report.

These act on the station's own database with the rights of the OS user running them (the
same user who can read the database file); they are the station-side counterparts of the
``skinstation engine ...`` admin commands.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from skinstation.settings import Settings
from skinstation.sync.cli import settings_from_args


def cmd_audit_verify(args: argparse.Namespace) -> int:
    """Recompute the station audit log's hash chain; exit 1 when it is broken."""
    from skinstation.storage import init_database
    from skinstation.storage.audit import verify_audit_log

    database = init_database(settings_from_args(args))
    try:
        with database.transaction() as session:
            report = verify_audit_log(session)
    finally:
        database.dispose()
    print(report.summary("station audit log"))
    return 0 if report.intact else 1


def _audit_system_action(settings: Settings, action: str, detail: dict[str, Any]) -> None:
    from skinstation.core.timeutil import utc_now
    from skinstation.storage import init_database
    from skinstation.storage.audit import record_audit

    database = init_database(settings)
    try:
        with database.transaction() as session:
            record_audit(session, at=utc_now(), station_id=settings.station_id, actor_id=None,
                         action=action, detail=detail)
    finally:
        database.dispose()


def cmd_backup(args: argparse.Namespace) -> int:
    """Write a backup archive of this station (database snapshot, images, models)."""
    from pathlib import Path

    from skinstation.storage.audit import AuditAction
    from skinstation.storage.backup import create_backup

    settings = settings_from_args(args)
    report = create_backup(settings, Path(args.out))
    _audit_system_action(settings, AuditAction.BACKUP_CREATED,
                         {"archive": report.archive.name, "files": report.files,
                          "images": report.images})
    print(f"wrote {report.archive}: {report.files} files ({report.images} images, "
          f"{report.total_bytes} bytes); keep it as safe as the station itself")
    return 0


def cmd_restore(args: argparse.Namespace) -> int:
    """Restore a backup archive into this station's home (stop the station app first)."""
    from pathlib import Path

    from skinstation.storage.audit import AuditAction
    from skinstation.storage.backup import restore_backup

    settings = settings_from_args(args)
    report = restore_backup(settings, Path(args.archive))
    _audit_system_action(settings, AuditAction.BACKUP_RESTORED,
                         {"archive": report.archive.name, "files": report.files})
    print(f"restored {report.files} files ({report.images} images) from {report.archive}")
    if report.set_aside is not None:
        print(f"the station's previous data was moved to {report.set_aside}")
    return 0


def cmd_patient_erase(args: argparse.Namespace) -> int:
    """Erase a patient's data from this station; the engine is told on the next sync."""
    from skinstation.storage import init_database
    from skinstation.storage.erasure import describe_patient, erase_patient

    database = init_database(settings_from_args(args))
    try:
        pseudonym, visits, captures = describe_patient(database, args.patient_id)
        if not args.yes:
            print(f"patient {args.patient_id} ({pseudonym}): {visits} visit(s), {captures} "
                  "capture(s) with their images, labels and predictions will be erased here "
                  "and on the engine. This cannot be undone.")
            try:
                answer = input("type 'erase' to go on: ")
            except EOFError:
                answer = ""
            if answer.strip() != "erase":
                print("nothing erased")
                return 1
        report = erase_patient(database, args.patient_id, actor_id=None, reason=args.reason)
    finally:
        database.dispose()
    counts = report.counts
    print(f"erased patient {args.patient_id} ({report.reason}): {counts.visits} visit(s), "
          f"{counts.captures} capture(s), {counts.predictions} prediction(s), {counts.labels} "
          f"label(s), {counts.engine_reviews} engine review(s), {counts.outbox} outbox "
          f"entr{'y' if counts.outbox == 1 else 'ies'}, {report.images_deleted} image file(s); "
          f"erasure {report.erasure_id} goes to the engine on the next sync")
    return 0


def cmd_keys_rotate(args: argparse.Namespace) -> int:
    """Rotate the station's data keys; re-encrypt every image and encrypted column."""
    from skinstation.core.crypto import STATION_KEYS
    from skinstation.core.images import ImageError
    from skinstation.core.keyring_file import KeystoreError
    from skinstation.storage import init_database
    from skinstation.storage.keys import rotate_station_keys

    database = init_database(settings_from_args(args))
    try:
        report = rotate_station_keys(database)
    except (KeystoreError, ImageError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    finally:
        database.dispose()
    print("\n".join(report.lines(f"skinstation-secrets/{STATION_KEYS}")))
    return 0


def _export_service(args: argparse.Namespace) -> Any:
    from skinstation.services.station import StationService

    return StationService(settings_from_args(args))


def cmd_export_dicom(args: argparse.Namespace) -> int:
    """Write a capture as a DICOM Dermoscopic Photography file; C-STORE it with --send."""
    from pathlib import Path

    from skinstation.interop.pacs import PacsError
    from skinstation.services.export import export_capture_dicom, send_dicom
    from skinstation.storage import NotFoundError

    service = _export_service(args)
    try:
        path = export_capture_dicom(service, args.capture, Path(args.out))
        print(f"wrote {path}")
        if args.send:
            result = send_dicom(service, args.capture, [path], host=args.pacs_host,
                                port=args.pacs_port, ae_title=args.pacs_ae_title)
            print(f"stored {len(result.sent)} instance(s) on the PACS")
    except (NotFoundError, PacsError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    finally:
        service.database.dispose()
    return 0


def cmd_export_fhir(args: argparse.Namespace) -> int:
    """Write a capture's FHIR report bundle; POST it to the FHIR server with --post."""
    from pathlib import Path

    from skinstation.interop.fhir import FhirError
    from skinstation.services.export import export_capture_fhir, send_fhir
    from skinstation.storage import NotFoundError

    service = _export_service(args)
    try:
        bundle = export_capture_fhir(service, args.capture, Path(args.out))
        print(f"wrote {args.out} ({len(bundle.entry or [])} resources)")
        if args.post:
            send_fhir(service, args.capture, bundle, args.url or None)
            print(f"posted to {args.url or service.settings.interop.fhir_url}")
    except (NotFoundError, FhirError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    finally:
        service.database.dispose()
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    """Write a capture's one-page referral report (PDF, mode 0600; print it from any viewer)."""
    from pathlib import Path

    from skinstation.core.i18n import TranslatableError
    from skinstation.services.report import capture_report
    from skinstation.storage import ImageError, NotFoundError

    service = _export_service(args)
    language = args.language or service.settings.language
    try:
        path = capture_report(service, None, args.capture, Path(args.out), language,
                              heatmap=args.heatmap)
    except TranslatableError as error:
        print(f"error: {error.translated(language)}", file=sys.stderr)
        return 1
    except (NotFoundError, ImageError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    finally:
        service.database.dispose()
    print(f"wrote {path}")
    return 0


def _register_report_command(commands: argparse._SubParsersAction[argparse.ArgumentParser],
                             ) -> None:
    report = commands.add_parser(
        "report", help="write a capture's one-page referral report as a PDF (patient by "
                       "pseudonym; names only with interop.send_patient_names)")
    report.add_argument("--capture", type=int, required=True, metavar="ID")
    report.add_argument("--out", required=True, metavar="FILE", help="PDF file to write")
    report.add_argument("--language", choices=["en", "ko"], default=None,
                        help="language of the report (default: the station's)")
    report.add_argument("--heatmap", action="store_true",
                        help="add the Grad-CAM heatmap of the top class")
    report.set_defaults(handler=cmd_report)


def _register_export_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser],
                              ) -> None:
    export = commands.add_parser(
        "export", help="export a capture to hospital systems (the patient is identified by "
                       "the pseudonym; names only with interop.send_patient_names)")
    export_sub = export.add_subparsers(dest="export_command", required=True)
    as_dicom = export_sub.add_parser("dicom", help="a DICOM Dermoscopic Photography file")
    as_dicom.add_argument("--capture", type=int, required=True, metavar="ID")
    as_dicom.add_argument("--out", required=True, metavar="DIR", help="folder to write to")
    as_dicom.add_argument("--send", action="store_true",
                          help="also C-STORE it to the PACS (interop.pacs_* settings)")
    as_dicom.add_argument("--pacs-host", default=None)
    as_dicom.add_argument("--pacs-port", type=int, default=None)
    as_dicom.add_argument("--pacs-ae-title", default=None)
    as_dicom.set_defaults(handler=cmd_export_dicom)
    as_fhir = export_sub.add_parser("fhir", help="a FHIR R4 DiagnosticReport bundle (JSON)")
    as_fhir.add_argument("--capture", type=int, required=True, metavar="ID")
    as_fhir.add_argument("--out", required=True, metavar="FILE", help="JSON file to write")
    as_fhir.add_argument("--post", action="store_true",
                         help="also POST it to the FHIR server (interop.fhir_url)")
    as_fhir.add_argument("--url", default=None, help="FHIR server base URL (overrides the "
                                                     "setting)")
    as_fhir.set_defaults(handler=cmd_export_fhir)


def register_station_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser],
                              ) -> None:
    """Add the station's admin commands to the top-level subparsers."""
    audit = commands.add_parser("audit", help="the station's audit log")
    audit_sub = audit.add_subparsers(dest="audit_command", required=True)
    audit_sub.add_parser(
        "verify", help="check the audit log's hash chain (prints the head hash to note down)",
    ).set_defaults(handler=cmd_audit_verify)
    backup = commands.add_parser("backup", help="write a backup archive of this station")
    backup.add_argument("--out", required=True, help="archive file to write (mode 0600)")
    backup.set_defaults(handler=cmd_backup)
    restore = commands.add_parser(
        "restore", help="restore a backup archive (stop the station app first)")
    restore.add_argument("archive")
    restore.set_defaults(handler=cmd_restore)
    keys = commands.add_parser("keys", help="the station's data keys (encryption at rest)")
    keys_sub = keys.add_subparsers(dest="keys_command", required=True)
    keys_sub.add_parser(
        "rotate", help="make a new data key current and re-encrypt images, pseudonyms, names "
        "and notes under it (old keys stay for older backups)",
    ).set_defaults(handler=cmd_keys_rotate)
    patient = commands.add_parser("patient", help="a patient's data on this station")
    patient_sub = patient.add_subparsers(dest="patient_command", required=True)
    erase = patient_sub.add_parser(
        "erase", help="erase a patient's images, captures, labels and predictions here and "
                      "(on the next sync) on the engine")
    erase.add_argument("patient_id", type=int, metavar="ID", help="the patient's local id")
    erase.add_argument("--reason", required=True, choices=["patient_request", "entered_in_error"],
                       help="why (a fixed set: never free text)")
    erase.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    erase.set_defaults(handler=cmd_patient_erase)
    _register_export_commands(commands)
    _register_report_command(commands)
