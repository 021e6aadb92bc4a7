"""Referral report: a one-page PDF of a capture, for the referral letter or to print (issue 20).

:func:`capture_report` writes one capture's page; :func:`lesion_report` one lesion's, with its
captures over time. The page shows the station, the dates (local time), the patient by
pseudonym (the name only when ``interop.send_patient_names`` allows names in documents that
leave the station and the station stores one), the body site (translated, marked on a small
body map), the capture image (read back through the station's decrypting image store),
optionally a Grad-CAM heatmap, the decision in exactly the station's words
(:func:`result_text.word_prediction` and :func:`result_text.percent`), the referral flag and
threshold, the group and class probabilities, the operator's label and note, the reviewer's
final label, the model version and the not-a-diagnosis notice, all in the chosen language with
the font embedded (:mod:`.report_fonts`). The file is written atomically and owner-only (0600)
and one ``capture.report`` audit row names the language, never patient data.

Printing is the operating system's: any PDF viewer prints the file; the station has no
printing code of its own.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from sqlalchemy import select

from skinstation import __version__
from skinstation.auth import Session, can_view_history
from skinstation.core.files import write_atomically
from skinstation.core.i18n import LANGUAGES, TranslatableError, text
from skinstation.core.triage import NOT_ASSESSABLE, SKIN_CANCER
from skinstation.inference.model_file import ModelFileError
from skinstation.inference.preprocessing import decode_image
from skinstation.services.models import ModelInfo
from skinstation.services.report_fonts import ReportFont, report_font
from skinstation.services.report_pdf import DecisionText, ReportPage, render_pdf
from skinstation.services.result_text import band_name, percent, word_prediction
from skinstation.services.station import CaptureDetail, StationService
from skinstation.storage import AuditAction, Capture, Label, NotFoundError, Operator, Patient, Visit
from skinstation.storage.labels import label_history

GROUP_ORDER = ("skin_cancer", "other_disease", "benign")
NOTE_LIMIT = 300
"""Longest note printed (longer ones are cut with "…", so the page stays one page)."""

TIMELINE_LIMIT = 7
"""Most captures a lesion report shows as thumbnails."""

OVERVIEW_SIDE = 480
"""Long side (pixels) of a lesion's overview photo on the page."""

Translate = Callable[..., str]


def translator(language: str) -> Translate:
    """``tr(key, **values)`` in ``language`` (the texts of ``resources/i18n``)."""
    if language not in LANGUAGES:
        raise ValueError(f"unsupported language {language!r} (supported: {', '.join(LANGUAGES)})")

    def tr(key: str, **values: Any) -> str:
        return text(key, language).format(**values)

    return tr


def local_time(moment: dt.datetime | None) -> str:
    """``YYYY-MM-DD HH:MM TZ`` in the station's local time ("" for None)."""
    if moment is None:
        return ""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.UTC)
    return moment.astimezone().strftime("%Y-%m-%d %H:%M %Z").strip()


def _tr_or(tr: Translate, key: str, fallback: str) -> str:
    try:
        return tr(key)
    except KeyError:
        return fallback


@dataclass(frozen=True)
class _Record:
    """What a report reads about one capture."""

    detail: CaptureDetail
    pseudonym: str
    name: str | None
    visit_number: int
    names: Mapping[int, str]


def _actor(service: StationService, session: Session | None) -> int | None:
    if session is None:
        return None
    service.auth.require(session, can_view_history)
    return session.operator_id


def _read(service: StationService, session: Session | None, capture_id: int) -> _Record:
    """The capture (image, prediction, labels), its patient and visit, and operator names.

    With a session the capture is read as the screens read it (audited views); without one
    (the station CLI, run by the OS user who owns the database) straight from the store.

    Raises:
        NotFoundError: If there is no such capture.
    """
    if session is not None:
        detail = service.capture_detail(session, capture_id)
    else:
        with service.database.transaction() as db:
            capture = db.get(Capture, capture_id)
            if capture is None:
                raise NotFoundError(f"capture {capture_id} not found")
            labels = label_history(db, capture_id)
        pixels = decode_image(service.database.images.read(capture.image_ref,
                                                           capture.image_sha256),
                              name=f"capture {capture_id}")
        detail = CaptureDetail(capture, pixels, service.store.latest_prediction(capture_id),
                               labels)
    with service.database.transaction() as db:
        row = db.execute(select(Visit.number, Patient.pseudonym, Patient.name)
                         .join(Patient, Patient.id == Visit.patient_id)
                         .where(Visit.id == detail.capture.visit_id)).one()
        names = {operator.id: operator.display_name for operator in db.scalars(select(Operator))}
    allowed = service.settings.interop.send_patient_names
    return _Record(detail, str(row.pseudonym), (row.name or None) if allowed else None,
                   int(row.number or 0), names)


def _in_use(service: StationService, model_version: str) -> ModelInfo | None:
    """The model in use when it is ``model_version`` (it made the stored prediction)."""
    if not model_version:
        return None
    try:
        info = service.model_info()
    except (ModelFileError, OSError, ValueError):
        return None
    return info if info.version == model_version else None


def _note(note: str | None) -> str:
    if not note:
        return ""
    note = " ".join(note.split())
    return f" — {note if len(note) <= NOTE_LIMIT else note[:NOTE_LIMIT - 1] + '…'}"


def _label_name(tr: Translate, label: Label) -> str:
    if not label.code:
        return tr("ui.detail.no_diagnosis")
    return f"{_tr_or(tr, f'class.{label.code}', label.code)} ({label.code})"


def _label_lines(tr: Translate, record: _Record) -> list[str]:
    labels = record.detail.labels

    def author(label: Label) -> str:
        return record.names.get(label.author_id) or tr("ui.detail.operator", id=label.author_id)

    lines = []
    original = labels.original
    if original is None:
        lines.append(tr("ui.detail.no_label"))
    else:
        lines.append(tr("ui.detail.original", label=_label_name(tr, original),
                        author=author(original), time=local_time(original.created_at))
                     + _note(original.note))
    if labels.reviews:
        final = labels.reviews[-1]
        lines.append(tr("report.final", label=_label_name(tr, final), author=author(final),
                        time=local_time(final.created_at)) + _note(final.note))
    else:
        lines.append(tr("ui.detail.not_reviewed"))
    return lines


def _prediction_parts(tr: Translate, prediction: Mapping[str, Any] | None,
                      threshold: float | None) -> dict[str, Any]:
    """Decision words, referral line and probability rows of a stored prediction."""
    if prediction is None:
        return {"decision": DecisionText("", tr("ui.result.not_classified"))}
    decision = str(prediction["decision"])
    referral = bool(prediction.get("referral"))
    groups: dict[str, float] = dict(prediction.get("group_probabilities") or {})
    classes: dict[str, float] = dict(prediction.get("class_probabilities") or {})
    wording = word_prediction(tr, decision, referral, groups, classes, threshold)
    parts: dict[str, Any] = {"decision": DecisionText(wording.style, wording.title,
                                                      wording.referral, wording.detail,
                                                      wording.guidance)}
    if decision == NOT_ASSESSABLE or not groups:
        return parts
    parts["referral_line"] = tr(
        "report.referral_line", flag=tr("report.yes" if referral else "report.no"),
        p=percent(groups.get(SKIN_CANCER, 0.0)),
        threshold=percent(threshold) if threshold is not None else tr("report.not_recorded"))
    order = [g for g in GROUP_ORDER if g in groups] + [g for g in groups if g not in GROUP_ORDER]
    parts["groups"] = [(_tr_or(tr, f"group.{g}", g), percent(groups[g])) for g in order]
    parts["classes"] = [(f"{_tr_or(tr, f'class.{c}', c)} ({c})", percent(p))
                        for c, p in sorted(classes.items(), key=lambda kv: -kv[1])]
    return parts


def _heatmap(service: StationService, detail: CaptureDetail, tr: Translate,
             same_model: bool) -> tuple[np.ndarray | None, str]:
    """The Grad-CAM overlay of the top class, when the model in use made the prediction."""
    prediction = detail.prediction
    if (prediction is None or not same_model or prediction["decision"] == NOT_ASSESSABLE
            or not prediction.get("class_probabilities")):
        return None, ""
    classes: dict[str, float] = dict(prediction["class_probabilities"])
    top = max(classes, key=lambda code: classes[code])
    explanation = service.explain(detail.pixels, top)
    name = f"{_tr_or(tr, f'class.{top}', top)} ({top})"
    return explanation.overlay(), tr("report.heatmap", name=name)


def build_capture_page(service: StationService, record: _Record, language: str, *,
                       heatmap: bool = False) -> ReportPage:
    """The report page of one capture, every text in ``language``."""
    tr = translator(language)
    detail = record.detail
    capture = detail.capture
    model_version = str((detail.prediction or {}).get("model_version") or "")
    model = _in_use(service, model_version)
    threshold = None if model is None else model.referral_threshold
    site = _tr_or(tr, f"ui.site.{capture.body_site}", capture.body_site)
    facts = [(tr("report.station"), capture.station_id),
             (tr("report.captured"), local_time(capture.capture_time)),
             (tr("report.created"), local_time(service.clock())),
             (tr("report.patient"), record.pseudonym)]
    if record.name:
        facts.append((tr("report.patient_name"), record.name))
    facts += [(tr("report.visit"), f"#{record.visit_number}"),
              (tr("report.capture"), tr("report.capture_value", id=capture.id,
                                        band=band_name(tr, capture.band))),
              (tr("report.site"), site),
              (tr("report.model"), model_version or "–"),
              (tr("report.captured_by"), record.names.get(capture.operator_id)
               or tr("ui.detail.operator", id=capture.operator_id))]
    overlay, overlay_caption = (_heatmap(service, detail, tr, model is not None)
                                if heatmap else (None, ""))
    return ReportPage(
        language=language, title=tr("report.title"), facts=facts, image=detail.pixels,
        image_caption=tr("report.image"), site_code=capture.body_site,
        body_map_caption=f"{tr('report.body_map')}: {site}",
        views=(tr("report.front"), tr("report.back")), decision_heading=tr("report.decision"),
        notice=tr("notice"),
        footer=tr("report.footer", version=__version__, uid=capture.uid),
        heatmap=overlay, heatmap_caption=overlay_caption,
        groups_heading=tr("ui.result.groups"), classes_heading=tr("ui.result.classes"),
        labels_heading=tr("report.labels"), label_lines=_label_lines(tr, record),
        **_prediction_parts(tr, detail.prediction, threshold))


def capture_report(service: StationService, session: Session | None, capture_id: int,
                   out_path: Path, language: str | None = None, *,
                   heatmap: bool = False) -> Path:
    """Write the one-page referral report of a capture as a PDF (owner-only; audited).

    Args:
        service: The station service.
        session: The operator's session (permission ``can_view_history``), or None for the
            station CLI (audited as the system).
        capture_id: The capture.
        out_path: The PDF file to write (replaced if it exists; folders are created).
        language: ``en`` or ``ko`` (default: the station's language).
        heatmap: Add the Grad-CAM heatmap of the top class (only when the model in use made
            the stored prediction).

    Returns:
        ``out_path``.

    Raises:
        PermissionDeniedError: If the session may not view captures.
        NotFoundError: If there is no such capture.
        TranslatableError: If no font fits the language (see :func:`report_font`).
    """
    language = language or service.settings.language
    translator(language)  # an unknown language fails before anything is read
    actor_id = _actor(service, session)
    font = report_font(service.settings.report_font, language)
    record = _read(service, session, capture_id)
    page = build_capture_page(service, record, language, heatmap=heatmap)
    return _write(service, actor_id, page, font, Path(out_path), "capture", capture_id,
                  {"language": language, "names": record.name is not None,
                   "heatmap": page.heatmap is not None})


def _write(service: StationService, actor_id: int | None, page: ReportPage, font: ReportFont,
           out_path: Path, entity_type: str, entity_id: int, detail: dict[str, Any]) -> Path:
    """Render ``page``, write it owner-only and atomically, and audit it (no patient data)."""
    write_atomically(out_path, render_pdf(page, font))
    service.store.audit(actor_id, AuditAction.CAPTURE_REPORT, entity_type=entity_type,
                        entity_id=entity_id, detail=detail)
    return out_path


def _decision_words(tr: Translate, decision: str | None) -> str:
    """The banner's words of a decision (as :func:`word_prediction` titles it)."""
    if decision is None:
        return tr("ui.result.not_classified")
    if decision == NOT_ASSESSABLE:
        return tr("ui.result.not_assessable")
    return tr(f"decision.{decision}")


def _overview(service: StationService, session: Session, capture_id: int | None,
              point: tuple[float, float] | None) -> np.ndarray | None:
    """A lesion's overview photo with a ring (white halo, red line) around its marked point."""
    if capture_id is None or point is None:
        return None
    pixels = service.thumbnails(session, [capture_id], max_side=OVERVIEW_SIDE)[capture_id].copy()
    height, width = pixels.shape[:2]
    centre = (min(width - 1, int(point[0] * width)), min(height - 1, int(point[1] * height)))
    radius = max(6, round(min(height, width) * 0.06))
    cv2.circle(pixels, centre, radius, (255, 255, 255), 5, cv2.LINE_AA)
    cv2.circle(pixels, centre, radius, (209, 36, 47), 2, cv2.LINE_AA)
    return pixels


def lesion_report(service: StationService, session: Session, lesion_id: int, out_path: Path,
                  language: str | None = None, *, heatmap: bool = False) -> Path:
    """Write the one-page referral report of a lesion over time (owner-only; audited).

    The page details the lesion's newest classified capture (as :func:`capture_report`) and
    shows up to :data:`TIMELINE_LIMIT` of its captures as small thumbnails, newest first,
    each with its date, decision and referral flag; and the lesion's overview photo with the
    lesion circled, when one is set (:meth:`LesionService.set_overview`).

    Args:
        service: The station service.
        session: The operator's session (permission ``can_view_history``).
        lesion_id: The lesion (see :class:`~skinstation.services.lesions.LesionService`).
        out_path: The PDF file to write.
        language: ``en`` or ``ko`` (default: the station's language).
        heatmap: Add the heatmap of the detailed capture.

    Raises:
        PermissionDeniedError: If the session may not view captures.
        NotFoundError: If there is no such lesion.
        TranslatableError: If the lesion has no captures, or no font fits the language.
    """
    from skinstation.services.lesions import LesionService

    language = language or service.settings.language
    tr = translator(language)
    actor_id = _actor(service, session)
    font = report_font(service.settings.report_font, language)
    lesions = LesionService(service)
    lesion = lesions.lesion(session, lesion_id)
    timeline = list(reversed(lesions.lesion_timeline(session, lesion_id)))  # newest first
    if not timeline:
        raise TranslatableError("error.report_lesion_empty", id=lesion_id)
    newest = next((row for row in timeline if row.decision is not None), timeline[0])
    record = _read(service, session, newest.capture_id)
    page = build_capture_page(service, record, language, heatmap=heatmap)
    shown = timeline[:TIMELINE_LIMIT]
    thumbnails = service.thumbnails(session, [row.capture_id for row in shown], max_side=160)
    strip = [(thumbnails[row.capture_id],
              "\n".join([local_time(row.capture_time), _decision_words(tr, row.decision)]
                        + ([tr("report.referred")] if row.referral else [])))
             for row in shown]
    side = _tr_or(tr, f"report.side.{lesion.side}", lesion.side)
    name = f"#{lesion.id}" + (f" {lesion.label}" if lesion.label else "") + f" · {side}"
    page = dataclasses.replace(
        page, title=tr("report.lesion_title"),
        facts=[*page.facts, (tr("report.lesion"), name)], site_code=lesion.body_site,
        site_view=lesion.view, site_side=lesion.side,
        timeline_heading=tr("report.timeline", shown=len(shown), count=len(timeline)),
        timeline=strip,
        overview=_overview(service, session, lesion.overview_capture_id, lesion.overview_point),
        overview_caption="" if lesion.overview_capture_id is None else tr(
            "report.overview", id=lesion.overview_capture_id))
    return _write(service, actor_id, page, font, Path(out_path), "lesion", lesion_id,
                  {"language": language, "names": record.name is not None,
                   "heatmap": page.heatmap is not None, "captures": len(timeline),
                   "capture_id": newest.capture_id})
