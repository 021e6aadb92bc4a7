"""A capture's triage result as a FHIR R4 transaction Bundle (validated by fhir.resources).

The Bundle holds a Patient (identified by the pseudonym; a name only where names may leave
the station), an ImagingStudy (the visit, with the capture's DICOM UIDs), a Media (the
image), Observations of the triage-group probabilities, the decision and the referral flag,
and the DiagnosticReport that ties them together; its conclusion and narrative carry the
not-a-diagnosis notice. Entries are ``urn:uuid:`` full URLs derived from the capture's UUID
(stable across re-exports), every reference points at one of them, and the Patient and the
ImagingStudy are conditional creates, so POSTing the bundle twice does not duplicate them.
FHIR R4B is used for validation: it is R4-compatible for every resource here.
"""

from __future__ import annotations

import base64
import html
import json
import uuid
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from typing import Any

import requests
from fhir.resources.R4B.bundle import Bundle

from skinstation.interop.body_sites import SNOMED_CT_FHIR, anatomic_region
from skinstation.interop.dicom import MODALITY, SOP_CLASS_UID
from skinstation.interop.records import NOT_A_DIAGNOSIS, ExportCapture

PSEUDONYM_SYSTEM = "urn:skinstation:pseudonym"
"""Identifier system of the patient's pseudonymous id."""

CODE_SYSTEM = "urn:skinstation:triage"
"""SkinStation's own codes: observations, the report, decisions and triage groups."""

DICOM_SYSTEM = "http://dicom.nema.org/resources/ontology/DCM"
OBSERVATION_CATEGORY = "http://terminology.hl7.org/CodeSystem/observation-category"
DIAGNOSTIC_SERVICE = "http://terminology.hl7.org/CodeSystem/v2-0074"
MEDIA_TYPE = "http://terminology.hl7.org/CodeSystem/media-type"
UCUM = "http://unitsofmeasure.org"

_NAMESPACE = uuid.UUID("0d3b8f0e-96f3-4f57-8f8e-7f6f0f2a9c41")

DECISION_TEXT = {
    "benign": "benign",
    "other_disease": "other skin disease",
    "skin_cancer": "suspected skin cancer",
    "indeterminate": "indeterminate",
    "not_assessable": "not assessable",
}
"""Decision code → words (the report's conclusion)."""


class FhirError(RuntimeError):
    """The FHIR server could not be reached or refused the bundle."""


def _uuid(*parts: str) -> str:
    return str(uuid.uuid5(_NAMESPACE, "/".join(parts)))


def _when(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat()


def _ref(full_url: str, display: str | None = None) -> dict[str, str]:
    reference = {"reference": full_url}
    if display:
        reference["display"] = display
    return reference


def _code(code: str, display: str, system: str = CODE_SYSTEM) -> dict[str, Any]:
    return {"coding": [{"system": system, "code": code, "display": display}], "text": display}


def build_bundle(record: ExportCapture) -> Bundle:
    """The capture's report as a validated FHIR transaction Bundle.

    Args:
        record: The capture (its patient name already cleared unless names may be sent).

    Returns:
        The Bundle, validated by ``fhir.resources`` (R4B models).

    Raises:
        pydantic.ValidationError: If a resource does not validate (a bug here).
    """
    key = record.capture_uid
    ids = {kind: _uuid(kind, key) for kind in
           ("media", "groups", "decision", "referral", "report")}
    ids["patient"] = _uuid("patient", record.patient_pseudonym)
    ids["study"] = _uuid("study", record.study_uid)
    url = {kind: f"urn:uuid:{value}" for kind, value in ids.items()}
    region = anatomic_region(record.body_site)
    body_site = _code(region.code, region.meaning, SNOMED_CT_FHIR)
    patient_ref = _ref(url["patient"], record.patient_pseudonym)
    evidence = [_ref(url["media"]), _ref(url["study"])]
    prediction = record.prediction

    patient: dict[str, Any] = {
        "resourceType": "Patient", "id": ids["patient"],
        "identifier": [{"system": PSEUDONYM_SYSTEM, "value": record.patient_pseudonym}],
    }
    if record.patient_name:
        patient["name"] = [{"text": record.patient_name}]
    study: dict[str, Any] = {
        "resourceType": "ImagingStudy", "id": ids["study"], "status": "available",
        "identifier": [{"system": "urn:dicom:uid", "value": f"urn:oid:{record.study_uid}"}],
        "subject": patient_ref, "started": _when(record.visit_opened_at),
        "modality": [{"system": DICOM_SYSTEM, "code": MODALITY, "display": "Dermoscopy"}],
        "numberOfSeries": 1, "numberOfInstances": 1,
        "series": [{
            "uid": record.series_uid, "number": 1,
            "modality": {"system": DICOM_SYSTEM, "code": MODALITY, "display": "Dermoscopy"},
            "bodySite": {"system": SNOMED_CT_FHIR, "code": region.code,
                         "display": region.meaning},
            "started": _when(record.capture_time),
            "instance": [{
                "uid": record.instance_uid, "number": (record.multispectral_index or 0) + 1,
                "sopClass": {"system": "urn:ietf:rfc:3986", "code": f"urn:oid:{SOP_CLASS_UID}"},
            }],
        }],
    }
    height, width = int(record.pixels.shape[0]), int(record.pixels.shape[1])
    media: dict[str, Any] = {
        "resourceType": "Media", "id": ids["media"], "status": "completed",
        "identifier": [{"system": "urn:dicom:uid", "value": f"urn:oid:{record.instance_uid}"}],
        "type": _code("image", "Image", MEDIA_TYPE),
        "modality": _code(MODALITY, "Dermoscopy", DICOM_SYSTEM),
        "subject": patient_ref, "createdDateTime": _when(record.capture_time),
        "deviceName": record.device_id, "bodySite": body_site,
        "height": height, "width": width,
        "content": {"contentType": record.image_media_type,
                    "data": base64.b64encode(record.image).decode("ascii"),
                    "title": f"capture {record.capture_uid} ({record.band})",
                    "creation": _when(record.capture_time)},
        "note": [{"text": NOT_A_DIAGNOSIS}],
    }
    observations = list(_observations(record, ids, url, patient_ref, evidence, body_site))
    conclusion = _conclusion(record)
    report: dict[str, Any] = {
        "resourceType": "DiagnosticReport", "id": ids["report"], "status": "preliminary",
        "text": {"status": "generated",
                 "div": f'<div xmlns="http://www.w3.org/1999/xhtml"><p>'
                        f"{html.escape(conclusion)}</p></div>"},
        "category": [_code("IMG", "Diagnostic Imaging", DIAGNOSTIC_SERVICE)],
        "code": _code("skin-lesion-triage", "Skin lesion triage (automated classifier)"),
        "subject": patient_ref, "effectiveDateTime": _when(record.capture_time),
        "issued": _when(prediction.created_at if prediction else record.capture_time),
        "result": [_ref(url[kind]) for kind, _ in observations],
        "imagingStudy": [_ref(url["study"])],
        "media": [{"comment": f"{record.band} capture", "link": _ref(url["media"])}],
        "conclusion": conclusion,
    }
    resources = [("patient", patient), ("study", study), ("media", media), *observations,
                 ("report", report)]
    entries = []
    for kind, resource in resources:
        request: dict[str, str] = {"method": "POST", "url": resource["resourceType"]}
        if kind == "patient":
            request["ifNoneExist"] = f"identifier={PSEUDONYM_SYSTEM}|{record.patient_pseudonym}"
        elif kind == "study":
            request["ifNoneExist"] = f"identifier=urn:dicom:uid|urn:oid:{record.study_uid}"
        entries.append({"fullUrl": url[kind], "resource": resource, "request": request})
    return Bundle.model_validate({"resourceType": "Bundle", "type": "transaction",
                                  "timestamp": _when(record.capture_time), "entry": entries})


def _observations(record: ExportCapture, ids: Mapping[str, str], url: Mapping[str, str],
                  patient_ref: dict[str, str], evidence: list[dict[str, str]],
                  body_site: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    prediction = record.prediction
    if prediction is None:
        return
    common = {
        "resourceType": "Observation", "status": "preliminary",
        "category": [_code("imaging", "Imaging", OBSERVATION_CATEGORY)],
        "subject": patient_ref, "effectiveDateTime": _when(record.capture_time),
        "issued": _when(prediction.created_at), "bodySite": body_site,
        "derivedFrom": evidence,
        "method": {"text": f"SkinStation classifier, model {prediction.model_version}"},
        "note": [{"text": NOT_A_DIAGNOSIS}],
    }
    if prediction.group_probabilities:
        yield "groups", {**common, "id": ids["groups"],
                         "code": _code("triage-group-probabilities",
                                       "Triage group probabilities"),
                         "component": [{
                             "code": _code(group, DECISION_TEXT.get(group, group)),
                             "valueQuantity": {"value": round(100 * probability, 2),
                                               "unit": "%", "system": UCUM, "code": "%"},
                         } for group, probability
                             in sorted(prediction.group_probabilities.items())]}
    yield "decision", {**common, "id": ids["decision"],
                       "code": _code("triage-decision", "Triage decision"),
                       "valueCodeableConcept": _code(
                           prediction.decision,
                           DECISION_TEXT.get(prediction.decision, prediction.decision))}
    if prediction.referral is not None:
        yield "referral", {**common, "id": ids["referral"],
                           "code": _code("referral-suggested", "Referral suggested"),
                           "valueBoolean": prediction.referral}


def _conclusion(record: ExportCapture) -> str:
    prediction = record.prediction
    if prediction is None:
        return f"Not classified. {NOT_A_DIAGNOSIS}"
    decision = DECISION_TEXT.get(prediction.decision, prediction.decision)
    referral = {True: " Referral suggested.", False: " No referral suggested.",
                None: ""}[prediction.referral]
    return (f"Automated triage (model {prediction.model_version}): {decision}.{referral} "
            f"{NOT_A_DIAGNOSIS}")


def bundle_json(bundle: Bundle) -> str:
    """The Bundle as FHIR JSON text."""
    return bundle.model_dump_json(exclude_none=True)


def references_outside(bundle: Bundle) -> list[str]:
    """Every reference in the bundle that names no entry's full URL (empty: all resolve)."""
    document = json.loads(bundle_json(bundle))
    full_urls = {entry["fullUrl"] for entry in document.get("entry", [])}
    unresolved: list[str] = []

    def walk(value: Any) -> None:
        if isinstance(value, dict):
            reference = value.get("reference")
            if isinstance(reference, str) and reference not in full_urls:
                unresolved.append(reference)
            for item in value.values():
                walk(item)
        elif isinstance(value, list):
            for item in value:
                walk(item)

    walk(document.get("entry", []))
    return unresolved


def post_bundle(base_url: str, bundle: Bundle, *, timeout: float = 30.0) -> dict[str, Any]:
    """POST a transaction Bundle to a FHIR server's base URL.

    Returns:
        The server's response Bundle (``{}`` when it sent no JSON).

    Raises:
        FhirError: If the server is unreachable or answers other than 2xx.
    """
    try:
        response = requests.post(
            base_url.rstrip("/"), data=bundle_json(bundle).encode("utf-8"),
            headers={"Content-Type": "application/fhir+json",
                     "Accept": "application/fhir+json"}, timeout=timeout)
    except requests.RequestException as error:
        raise FhirError(f"FHIR server {base_url} unreachable: {error}") from error
    if not response.ok:
        raise FhirError(f"FHIR server {base_url} refused the bundle: HTTP "
                        f"{response.status_code} {response.text[:500]}")
    try:
        answer = response.json()
    except ValueError:
        return {}
    return answer if isinstance(answer, dict) else {}
