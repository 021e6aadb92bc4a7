"""FHIR export of a capture's triage result (issue 20): a validated R4 transaction Bundle.

Real parts: the station (SQLite, the tiny model, HAM10000 frames), fhir.resources parsing
the written JSON, and a real HTTP server on 127.0.0.1 receiving the POST.
"""

from __future__ import annotations

import base64
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from fhir.resources.R4B.bundle import Bundle

from skinstation.cli import main
from skinstation.interop.fhir import FhirError
from skinstation.interop.records import NOT_A_DIAGNOSIS
from skinstation.services.export import export_capture_fhir, send_fhir
from tests.export_helpers import NAME, PSEUDONYM, audit_rows, make_captures

DECISION_WORDS = {"benign": "benign", "other_disease": "other skin disease",
                  "skin_cancer": "suspected skin cancer", "indeterminate": "indeterminate",
                  "not_assessable": "not assessable"}


@pytest.fixture()
def made(settings, tiny_model, ham_dir):
    made = make_captures(settings.replace(model_path=tiny_model), ham_dir,
                         bands=("white",), body_site="hand")
    yield made
    made.service.database.dispose()


def references(value, found=None) -> list[str]:
    found = [] if found is None else found
    if isinstance(value, dict):
        if isinstance(value.get("reference"), str):
            found.append(value["reference"])
        for item in value.values():
            references(item, found)
    elif isinstance(value, list):
        for item in value:
            references(item, found)
    return found


def by_type(document: dict) -> dict[str, list[dict]]:
    kinds: dict[str, list[dict]] = {}
    for entry in document["entry"]:
        kinds.setdefault(entry["resource"]["resourceType"], []).append(entry)
    return kinds


def test_bundle_validates_and_every_reference_resolves(made, tmp_path: Path) -> None:
    service = made.service
    capture = made.captures[0].capture
    out = tmp_path / "report.json"
    export_capture_fhir(service, capture.id, out)
    text = out.read_text(encoding="utf-8")
    bundle = Bundle.model_validate_json(text)  # fhir.resources validation of the file
    assert bundle.type == "transaction"
    document = json.loads(text)
    full_urls = [entry["fullUrl"] for entry in document["entry"]]
    assert len(set(full_urls)) == len(full_urls)
    assert all(url.startswith("urn:uuid:") for url in full_urls)
    for entry in document["entry"]:  # each resource's id is its entry's uuid
        assert entry["fullUrl"] == f"urn:uuid:{entry['resource']['id']}"
        assert entry["request"]["method"] == "POST"
        assert entry["request"]["url"] == entry["resource"]["resourceType"]
    found = references(document["entry"])
    assert found and set(found) <= set(full_urls)
    kinds = by_type(document)
    assert {kind: len(entries) for kind, entries in kinds.items()} == {
        "Patient": 1, "ImagingStudy": 1, "Media": 1, "Observation": 3, "DiagnosticReport": 1}

    patient = kinds["Patient"][0]
    assert patient["resource"]["identifier"] == [
        {"system": "urn:skinstation:pseudonym", "value": PSEUDONYM}]
    assert "name" not in patient["resource"]
    assert patient["request"]["ifNoneExist"] == (
        f"identifier=urn:skinstation:pseudonym|{PSEUDONYM}")

    prediction = service.store.latest_prediction(capture.id)
    report = kinds["DiagnosticReport"][0]["resource"]
    assert report["status"] == "preliminary"
    assert report["subject"]["reference"] == patient["fullUrl"]
    assert report["conclusion"] == (
        f"Automated triage (model {prediction['model_version']}): "
        f"{DECISION_WORDS[prediction['decision']]}. "
        f"{'Referral suggested.' if prediction['referral'] else 'No referral suggested.'} "
        f"{NOT_A_DIAGNOSIS}")
    assert NOT_A_DIAGNOSIS in report["text"]["div"]
    observations = {entry["fullUrl"]: entry["resource"] for entry in kinds["Observation"]}
    assert [ref["reference"] for ref in report["result"]] == list(observations)
    assert report["media"][0]["link"]["reference"] == kinds["Media"][0]["fullUrl"]
    assert report["imagingStudy"][0]["reference"] == kinds["ImagingStudy"][0]["fullUrl"]

    groups, decision, referral = observations.values()
    assert {c["code"]["coding"][0]["code"]: c["valueQuantity"]["value"]
            for c in groups["component"]} == {
        group: round(100 * p, 2) for group, p in prediction["group_probabilities"].items()}
    assert decision["valueCodeableConcept"]["coding"][0]["code"] == prediction["decision"]
    assert referral["valueBoolean"] is prediction["referral"]
    for observation in observations.values():
        assert observation["bodySite"]["coding"][0] == {
            "system": "http://snomed.info/sct", "code": "85562004", "display": "Hand"}
        assert {ref["reference"] for ref in observation["derivedFrom"]} == {
            kinds["Media"][0]["fullUrl"], kinds["ImagingStudy"][0]["fullUrl"]}

    media = kinds["Media"][0]["resource"]
    stored = service.database.images.read(capture.image_ref, capture.image_sha256)
    assert base64.b64decode(media["content"]["data"]) == stored
    assert (media["width"], media["height"]) == (capture.width, capture.height)
    study = kinds["ImagingStudy"][0]["resource"]
    series = study["series"][0]
    assert series["modality"]["code"] == "DMS"
    assert series["instance"][0]["sopClass"]["code"] == "urn:oid:1.2.840.10008.5.1.4.1.1.77.1.7"
    assert study["identifier"][0]["value"].startswith("urn:oid:2.25.")

    assert audit_rows(service, "capture.exported") == [
        (None, str(capture.id), {"format": "fhir", "file": "report.json", "names": False})]


def test_names_go_into_the_bundle_only_when_configured(settings, tiny_model, ham_dir) -> None:
    made = make_captures(settings.replace(model_path=tiny_model, store_patient_names=True),
                         ham_dir, name=NAME)
    capture = made.captures[0].capture
    try:
        kept = export_capture_fhir(made.service, capture.id)
        assert NAME not in kept.model_dump_json()
        made.service.settings = made.service.settings.replace(
            interop={"send_patient_names": True})
        sent = json.loads(export_capture_fhir(made.service, capture.id).model_dump_json())
        patient = by_type(sent)["Patient"][0]["resource"]
        assert patient["name"] == [{"text": NAME}]
        assert patient["identifier"][0]["value"] == PSEUDONYM
    finally:
        made.service.database.dispose()


class RecordingFhirServer:
    """A real HTTP server on 127.0.0.1 that records each POST and answers like a FHIR server."""

    def __init__(self, status: int = 200) -> None:
        self.requests: list[tuple[str, dict[str, str], bytes]] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                outer.requests.append((self.path, dict(self.headers), body))
                answer = json.dumps({"resourceType": "Bundle", "type": "transaction-response",
                                     "entry": []}).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/fhir+json")
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/fhir"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture()
def fhir_server():
    server = RecordingFhirServer()
    yield server
    server.close()


def test_post_to_a_local_fhir_server(made, fhir_server: RecordingFhirServer) -> None:
    service = made.service
    capture = made.captures[0].capture
    bundle = export_capture_fhir(service, capture.id)
    answer = send_fhir(service, capture.id, bundle, fhir_server.url)
    assert answer == {"resourceType": "Bundle", "type": "transaction-response", "entry": []}
    [(path, headers, body)] = fhir_server.requests
    assert path == "/fhir"
    assert headers["Content-Type"] == "application/fhir+json"
    posted = Bundle.model_validate_json(body)
    assert posted.model_dump() == bundle.model_dump()
    assert audit_rows(service, "capture.sent") == [
        (None, str(capture.id), {"format": "fhir", "to": fhir_server.url})]


def test_a_refusing_server_is_an_error_and_not_audited_as_sent(made) -> None:
    refusing = RecordingFhirServer(status=422)
    try:
        bundle = export_capture_fhir(made.service, made.captures[0].capture.id)
        with pytest.raises(FhirError, match="refused the bundle: HTTP 422"):
            send_fhir(made.service, made.captures[0].capture.id, bundle, refusing.url)
        assert len(refusing.requests) == 1
        assert audit_rows(made.service, "capture.sent") == []
        with pytest.raises(ValueError, match="no FHIR server configured"):
            send_fhir(made.service, made.captures[0].capture.id, bundle)
    finally:
        refusing.close()


def test_cli_writes_and_posts(made, fhir_server: RecordingFhirServer, tmp_path: Path,
                              monkeypatch, capsys) -> None:
    settings = made.service.settings
    config = tmp_path / "station.toml"
    config.write_text(f'home = "{settings.home}"\n[interop]\nfhir_url = "{fhir_server.url}"\n')
    monkeypatch.setenv("SKINSTATION_CONFIG", str(config))
    capture = made.captures[0].capture
    out = tmp_path / "bundle.json"
    assert main(["export", "fhir", "--capture", str(capture.id), "--out", str(out),
                 "--post"]) == 0
    assert capsys.readouterr().out.splitlines() == [
        f"wrote {out} (7 resources)", f"posted to {fhir_server.url}"]
    [(_, _, body)] = fhir_server.requests
    assert json.loads(body) == json.loads(out.read_text(encoding="utf-8"))
