"""DICOM export of captures (issue 20): Dermoscopic Photography files and C-STORE to a PACS.

Real parts: the station (SQLite, the tiny model, HAM10000 frames through the simulated
dermatoscope), pydicom reading the written files back, a pynetdicom SCP on 127.0.0.1.
"""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pytest
from pydicom import dcmread
from pydicom.uid import ExplicitVRLittleEndian
from pynetdicom import AE, evt

from skinstation.cli import main
from skinstation.interop.pacs import PacsError
from skinstation.interop.records import NOT_A_DIAGNOSIS
from skinstation.services.export import export_capture_dicom, send_dicom
from tests.export_helpers import NAME, PSEUDONYM, audit_rows, make_captures, stored_pixels

DERMOSCOPIC_PHOTOGRAPHY = "1.2.840.10008.5.1.4.1.1.77.1.7"

# Type 1 (value required) and Type 2 (present, may be empty) attributes of every module this
# export claims for the Dermoscopic Photography Image IOD (PS3.3 A.32.12), written out here
# independently of the exporter's own table.
TYPE1 = {
    "Patient": ["PatientID"],
    "General Study": ["StudyInstanceUID"],
    "General Series": ["Modality", "SeriesInstanceUID"],
    "General Equipment": [],
    "Enhanced General Equipment": ["Manufacturer", "ManufacturerModelName",
                                   "DeviceSerialNumber", "SoftwareVersions"],
    "General Image": [],
    "Image Pixel": ["SamplesPerPixel", "PhotometricInterpretation", "Rows", "Columns",
                    "BitsAllocated", "BitsStored", "HighBit", "PixelRepresentation",
                    "PlanarConfiguration", "PixelData"],
    "VL Image": ["ImageType", "ContentTime"],
    "Dermoscopic Image": ["RecognizableVisualFeatures", "AnatomicRegionSequence"],
    "SOP Common": ["SOPClassUID", "SOPInstanceUID", "SpecificCharacterSet"],
}
TYPE2 = {
    "Patient": ["PatientName", "PatientBirthDate", "PatientSex"],
    "General Study": ["StudyDate", "StudyTime", "ReferringPhysicianName", "StudyID",
                      "AccessionNumber"],
    "General Series": ["SeriesNumber"],
    "General Equipment": ["Manufacturer"],
    "General Image": ["InstanceNumber", "PatientOrientation", "ContentDate", "ContentTime"],
    "Acquisition Context": ["AcquisitionContextSequence"],
    "VL Image": ["LossyImageCompression"],
    "Dermoscopic Image": ["LightSourcePolarization", "EmitterColorTemperature",
                          "ContactMethod", "OpticalMagnificationFactor"],
}


def check_required(ds) -> list[str]:
    problems = []
    for module, keywords in TYPE1.items():
        for keyword in keywords:
            value = ds.get(keyword)
            if value is None or (hasattr(value, "__len__") and len(value) == 0):
                problems.append(f"{module}: {keyword} (Type 1) missing or empty")
    for module, keywords in TYPE2.items():
        problems += [f"{module}: {k} (Type 2) absent" for k in keywords if k not in ds]
    for item in ds.get("AnatomicRegionSequence", []):
        for keyword in ("CodeValue", "CodingSchemeDesignator", "CodeMeaning"):
            if not item.get(keyword):
                problems.append(f"AnatomicRegionSequence item: {keyword} missing")
    return problems


@pytest.fixture()
def made(settings, tiny_model, ham_dir):
    made = make_captures(settings.replace(model_path=tiny_model), ham_dir,
                         bands=("white", "cross_polarised", "uv_365"), body_site="back")
    yield made
    made.service.database.dispose()


def test_capture_reads_back_with_every_required_attribute(made, tmp_path: Path) -> None:
    service = made.service
    white, polarised, uv = (saved.capture for saved in made.captures)
    paths = [export_capture_dicom(service, c.id, tmp_path / "out") for c in (white, polarised,
                                                                           uv)]
    datasets = [dcmread(path) for path in paths]
    for ds in datasets:
        assert check_required(ds) == []
        assert ds.SOPClassUID == DERMOSCOPIC_PHOTOGRAPHY
        assert ds.file_meta.MediaStorageSOPClassUID == DERMOSCOPIC_PHOTOGRAPHY
        assert ds.file_meta.TransferSyntaxUID == ExplicitVRLittleEndian
        assert ds.Modality == "DMS"
        assert ds.PatientID == PSEUDONYM
        assert str(ds.PatientName) == ""
        assert ds.PhotometricInterpretation == "RGB"
        assert ds.ContactMethod == "NON_CONTACT"
        assert "ImmersionMedia" not in ds
        assert float(ds.OpticalMagnificationFactor) == 10.0
        region = ds.AnatomicRegionSequence[0]
        assert (region.CodeValue, region.CodingSchemeDesignator, region.CodeMeaning) == (
            "77568009", "SCT", "Back")
        assert NOT_A_DIAGNOSIS in ds.ImageComments
        assert ds.LossyImageCompression == "00"
    white_ds, polarised_ds, uv_ds = datasets
    # The pixels are the stored image, exactly.
    assert np.array_equal(white_ds.pixel_array, stored_pixels(service, white.id))
    assert (white_ds.Rows, white_ds.Columns) == (white.height, white.width)
    # Illumination from the band.
    assert [ds.LightSourcePolarization for ds in datasets] == [
        "NON_POLARIZED", "POLARIZED", "NON_POLARIZED"]
    assert "ultraviolet 365 nm" in uv_ds.ImageComments
    # Identity: one visit = one study, one multispectral shot = one series, one capture =
    # one instance (numbered by band position).
    assert len({ds.StudyInstanceUID for ds in datasets}) == 1
    assert len({ds.SeriesInstanceUID for ds in datasets}) == 1
    assert len({ds.SOPInstanceUID for ds in datasets}) == 3
    assert [ds.InstanceNumber for ds in datasets] == [1, 2, 3]
    assert paths[0].name == f"{white_ds.SOPInstanceUID}.dcm"
    # The prediction travels with the classified frame only.
    prediction = service.store.latest_prediction(white.id)
    assert f"decision {prediction['decision']}" in white_ds.ImageComments
    assert "Model " not in polarised_ds.ImageComments
    # Re-exporting gives the same UIDs (a PACS sees the same instance, not a copy).
    again = dcmread(export_capture_dicom(service, white.id, tmp_path / "again"))
    assert again.SOPInstanceUID == white_ds.SOPInstanceUID
    # Each export is audited (by the system here: no operator session).
    rows = audit_rows(service, "capture.exported")
    assert [(actor, entity) for actor, entity, _ in rows] == [
        (None, str(white.id)), (None, str(polarised.id)), (None, str(uv.id)),
        (None, str(white.id))]
    assert rows[0][2] == {"format": "dicom", "file": paths[0].name, "names": False}


def test_names_leave_the_station_only_when_configured(settings, tiny_model, ham_dir,
                                                      tmp_path: Path) -> None:
    base = settings.replace(model_path=tiny_model, store_patient_names=True)
    made = make_captures(base, ham_dir, name=NAME, body_site="face")
    capture = made.captures[0].capture
    try:
        path = export_capture_dicom(made.service, capture.id, tmp_path / "kept")
        assert str(dcmread(path).PatientName) == ""
        assert NAME.encode() not in path.read_bytes()
        made.service.settings = made.service.settings.replace(
            interop={"send_patient_names": True, "contact_method": "CONTACT",
                     "immersion_media": ["GEL"]})
        ds = dcmread(export_capture_dicom(made.service, capture.id, tmp_path / "sent"))
        assert str(ds.PatientName) == NAME
        assert ds.PatientID == PSEUDONYM
        assert (ds.ContactMethod, ds.ImmersionMedia) == ("CONTACT", "GEL")
        assert ds.AnatomicRegionSequence[0].CodeValue == "89545001"
        assert audit_rows(made.service, "capture.exported")[-1][2]["names"] is True
    finally:
        made.service.database.dispose()


class StoreSCP:
    """A real pynetdicom Storage SCP on 127.0.0.1 that keeps what it receives."""

    def __init__(self, status: int = 0x0000) -> None:
        self.received: list = []
        self.calling: list[str] = []
        self.status = status
        self.lock = threading.Lock()
        ae = AE(ae_title="TESTPACS")
        ae.add_supported_context(DERMOSCOPIC_PHOTOGRAPHY, ExplicitVRLittleEndian)
        self.server = ae.start_server(("127.0.0.1", 0), block=False,
                                      evt_handlers=[(evt.EVT_C_STORE, self._store)])
        self.port = self.server.server_address[1]

    def _store(self, event) -> int:
        ds = event.dataset
        ds.file_meta = event.file_meta
        with self.lock:
            self.received.append(ds)
            self.calling.append(event.assoc.requestor.ae_title)
        return self.status

    def close(self) -> None:
        self.server.shutdown()


@pytest.fixture()
def scp():
    server = StoreSCP()
    yield server
    server.close()


def test_c_store_round_trip_to_a_local_scp(made, scp: StoreSCP, tmp_path: Path) -> None:
    service = made.service
    capture = made.captures[1].capture
    path = export_capture_dicom(service, capture.id, tmp_path)
    result = send_dicom(service, capture.id, [path], host="127.0.0.1", port=scp.port,
                        ae_title="TESTPACS")
    written = dcmread(path)
    assert result.sent == (written.SOPInstanceUID,)
    assert result.statuses == {written.SOPInstanceUID: 0}
    assert len(scp.received) == 1
    received = scp.received[0]
    assert scp.calling == ["SKINSTATION"]
    assert received.SOPClassUID == DERMOSCOPIC_PHOTOGRAPHY
    assert received.SOPInstanceUID == written.SOPInstanceUID
    assert received.PatientID == PSEUDONYM
    assert check_required(received) == []
    assert np.array_equal(received.pixel_array, stored_pixels(service, capture.id))
    assert audit_rows(service, "capture.sent") == [
        (None, str(capture.id), {"format": "dicom", "to": f"TESTPACS@127.0.0.1:{scp.port}",
                                 "instances": [written.SOPInstanceUID]})]


def test_a_refused_c_store_is_an_error_and_not_audited_as_sent(made, tmp_path: Path) -> None:
    refusing = StoreSCP(status=0xA700)  # Out of Resources
    try:
        capture = made.captures[0].capture
        path = export_capture_dicom(made.service, capture.id, tmp_path)
        with pytest.raises(PacsError, match=r"did not store: .*status 0xA700"):
            send_dicom(made.service, capture.id, [path], host="127.0.0.1",
                       port=refusing.port, ae_title="TESTPACS")
        assert audit_rows(made.service, "capture.sent") == []
    finally:
        refusing.close()


def test_cli_exports_and_sends(made, scp: StoreSCP, tmp_path: Path, monkeypatch,
                               capsys) -> None:
    settings = made.service.settings
    config = tmp_path / "station.toml"
    config.write_text(f'home = "{settings.home}"\n[interop]\npacs_host = "127.0.0.1"\n'
                      f'pacs_port = {scp.port}\npacs_ae_title = "TESTPACS"\n')
    monkeypatch.setenv("SKINSTATION_CONFIG", str(config))
    capture = made.captures[0].capture
    out = tmp_path / "cli"
    assert main(["export", "dicom", "--capture", str(capture.id), "--out", str(out),
                 "--send"]) == 0
    files = sorted(out.glob("*.dcm"))
    assert len(files) == 1
    assert capsys.readouterr().out.splitlines() == [
        f"wrote {files[0]}", "stored 1 instance(s) on the PACS"]
    assert [ds.SOPInstanceUID for ds in scp.received] == [dcmread(files[0]).SOPInstanceUID]
    assert main(["export", "dicom", "--capture", "999", "--out", str(out)]) == 1
    assert capsys.readouterr().err.strip() == "error: capture 999 not found"


def test_an_operator_export_is_audited_under_their_id_and_admins_may_not(
        made, tmp_path: Path) -> None:
    from skinstation.auth import PermissionDeniedError
    from tests.export_helpers import PASSWORD

    service = made.service
    capture = made.captures[0].capture
    nurse = service.login("nurse", PASSWORD)
    export_capture_dicom(service, capture.id, tmp_path, session=nurse)
    assert audit_rows(service, "capture.exported")[-1][:2] == (nurse.operator_id,
                                                               str(capture.id))
    admin = service.login("admin", PASSWORD)  # admins run the station, see no patient data
    with pytest.raises(PermissionDeniedError):
        export_capture_dicom(service, capture.id, tmp_path / "admin", session=admin)
    assert not (tmp_path / "admin").exists()
    assert len(audit_rows(service, "capture.exported")) == 1
