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
from pydicom.datadict import dictionary_VR, tag_for_keyword
from pydicom.uid import ExplicitVRLittleEndian
from pynetdicom import AE, evt

from skinstation.camera.illumination import BANDS
from skinstation.cli import main
from skinstation.interop import dicom_standard
from skinstation.interop.dicom import (
    BAND_ILLUMINATION,
    DermoscopeOptics,
    build_dataset,
    missing_attributes,
    write_capture,
)
from skinstation.interop.pacs import PacsError
from skinstation.interop.records import NOT_A_DIAGNOSIS
from skinstation.services.export import export_capture_dicom, send_dicom
from tests.export_helpers import (
    NAME,
    PSEUDONYM,
    audit_rows,
    export_record,
    make_captures,
    stored_pixels,
)

DERMOSCOPIC_PHOTOGRAPHY = "1.2.840.10008.5.1.4.1.1.77.1.7"

# Type 1 / 1C (value required) and Type 2 / 2C (present, may be empty) attributes of every
# module written for the Dermoscopic Photography Image IOD (PS3.3 A.32.11), written out here
# from the sources (dicom3tools module/iodcomp tables, see skinstation/interop/
# dicom_standard.py), independently of the exporter's own table. General Acquisition has
# Type 3 attributes only. 1C/2C: the export meets the condition always, except Laterality
# (a paired body part) and Immersion Media (Contact Method CONTACT).
MODULES = {
    "Patient": {"PatientName": "2", "PatientID": "2", "PatientBirthDate": "2",
                "PatientSex": "2"},
    "General Study": {"StudyInstanceUID": "1", "StudyDate": "2", "StudyTime": "2",
                      "ReferringPhysicianName": "2", "StudyID": "2", "AccessionNumber": "2"},
    "General Series": {"Modality": "1C", "SeriesInstanceUID": "1", "SeriesNumber": "2",
                       "Laterality": "2C"},
    "General Equipment": {"Manufacturer": "2"},
    "Enhanced General Equipment": {"Manufacturer": "1", "ManufacturerModelName": "1",
                                   "DeviceSerialNumber": "1", "SoftwareVersions": "1"},
    "General Acquisition": {},
    "General Image": {"InstanceNumber": "2", "PatientOrientation": "2C", "ContentDate": "2C",
                      "ContentTime": "2C"},
    "Image Pixel": {"SamplesPerPixel": "1", "PhotometricInterpretation": "1", "Rows": "1",
                    "Columns": "1", "BitsAllocated": "1", "BitsStored": "1", "HighBit": "1",
                    "PixelRepresentation": "1", "PlanarConfiguration": "1C",
                    "PixelData": "1C"},
    "Acquisition Context": {"AcquisitionContextSequence": "2"},
    "VL Image": {"ImageType": "1", "PhotometricInterpretation": "1", "BitsAllocated": "1",
                 "BitsStored": "1", "HighBit": "1", "PixelRepresentation": "1",
                 "SamplesPerPixel": "1", "PlanarConfiguration": "1C", "ContentTime": "1C",
                 "LossyImageCompression": "2"},
    "Dermoscopic Image": {"RecognizableVisualFeatures": "1", "LightSourcePolarization": "2",
                          "EmitterColorTemperature": "2", "ContactMethod": "2",
                          "ImmersionMedia": "2C", "OpticalMagnificationFactor": "2"},
    "SOP Common": {"SOPClassUID": "1", "SOPInstanceUID": "1", "SpecificCharacterSet": "1C"},
}
# (module, usage) of the IOD; every Mandatory one is written, no User-optional one.
IOD = [("Patient", "M"), ("Clinical Trial Subject", "U"), ("General Study", "M"),
       ("Patient Study", "U"), ("Clinical Trial Study", "U"), ("General Series", "M"),
       ("Clinical Trial Series", "U"), ("Frame of Reference", "U"), ("General Equipment", "M"),
       ("Enhanced General Equipment", "M"), ("VL Photographic Equipment", "U"),
       ("General Acquisition", "M"), ("General Image", "M"), ("General Reference", "U"),
       ("Image Pixel", "M"), ("Acquisition Context", "M"), ("VL Image", "M"),
       ("VL Photographic Acquisition", "U"), ("Dermoscopic Image", "M"), ("ICC Profile", "U"),
       ("SOP Common", "M"), ("Common Instance Reference", "U")]
# Tag, VR of the Dermoscopic Image attributes and the anatomic region (pydicom dictionary).
TAGS = {"RecognizableVisualFeatures": (0x00280302, "CS"),
        "LightSourcePolarization": (0x00161001, "CS"),
        "EmitterColorTemperature": (0x00161002, "DS"), "ContactMethod": (0x00161003, "CS"),
        "ImmersionMedia": (0x00161004, "CS"), "OpticalMagnificationFactor": (0x00161005, "DS"),
        "AnatomicRegionSequence": (0x00082218, "SQ"), "Laterality": (0x00200060, "CS"),
        "Modality": (0x00080060, "CS")}
# Station body site -> (SNOMED CT code, DICOM Code Meaning, paired).
SITES = {"scalp": ("41695006", "Scalp", False), "face": ("89545001", "Face", False),
         "ear": ("117590005", "Ear", True), "neck": ("45048000", "Neck", False),
         "chest": ("816094009", "Chest", False), "abdomen": ("818981001", "Abdomen", False),
         "back": ("77568009", "Back", False), "trunk": ("22943007", "Trunk", False),
         "genital": ("71934003", "Genital structure", False),
         "upper_extremity": ("53120007", "Upper limb", True),
         "hand": ("85562004", "Hand", True),
         "lower_extremity": ("61685007", "Lower limb", True),
         "foot": ("56459004", "Foot", True), "acral": ("39937001", "Skin", False),
         "unknown": ("39937001", "Skin", False)}
IMMERSION_MEDIA = ("ULTRASOUND_GEL", "ALCOHOL", "WATER", "MINERAL_OIL", "PLASTIC_CAP")


def check_required(ds, *, paired: bool = False) -> list[str]:
    """Problems of ``ds`` against :data:`MODULES` (Laterality only for a paired site)."""
    needed = {"Laterality": paired, "ImmersionMedia": ds.get("ContactMethod") == "CONTACT"}
    problems = []
    for module, attributes in MODULES.items():
        for keyword, kind in attributes.items():
            if not needed.get(keyword, True):
                continue
            if keyword not in ds:
                problems.append(f"{module}: {keyword} (Type {kind}) absent")
            elif kind.startswith("1") and ds[keyword].is_empty:
                problems.append(f"{module}: {keyword} (Type {kind}) empty")
    for item in ds.get("AnatomicRegionSequence", []):
        for keyword in ("CodeValue", "CodingSchemeDesignator", "CodeMeaning"):
            if not item.get(keyword):
                problems.append(f"AnatomicRegionSequence item: {keyword} missing")
    return problems


def test_the_exporters_tables_are_the_verified_ones() -> None:
    assert dicom_standard.SOP_CLASS_UID == DERMOSCOPIC_PHOTOGRAPHY
    assert dicom_standard.MODALITY == "DMS"
    assert dicom_standard.MODULE_ATTRIBUTES == MODULES
    assert [(m, u) for m, u, _ in dicom_standard.IOD_MODULES] == IOD
    written = [m for m, _, w in dicom_standard.IOD_MODULES if w]
    assert written == [m for m, u in IOD if u == "M"] == list(MODULES)
    assert dicom_standard.LIGHT_SOURCE_POLARIZATION == ("POLARIZED", "NON_POLARIZED")
    assert dicom_standard.CONTACT_METHODS == ("CONTACT", "NON_CONTACT")
    assert dicom_standard.IMMERSION_MEDIA == IMMERSION_MEDIA
    for keyword, (tag, vr) in TAGS.items():
        assert (tag_for_keyword(keyword), dictionary_VR(tag)) == (tag, vr)


def test_every_station_band_has_its_light_source_polarization() -> None:
    assert set(BAND_ILLUMINATION) == set(BANDS)
    for band in BANDS:
        ds = build_dataset(export_record(band=band), DermoscopeOptics())
        expected = "POLARIZED" if band == "cross_polarised" else "NON_POLARIZED"
        assert ds.LightSourcePolarization == expected
        assert BAND_ILLUMINATION[band].wavelength_nm == BANDS[band].wavelength_nm


@pytest.mark.parametrize("site", sorted(SITES))
def test_every_body_site_is_its_snomed_region(site: str, tmp_path: Path) -> None:
    code, meaning, paired = SITES[site]
    path = write_capture(export_record(body_site=site), DermoscopeOptics(), tmp_path)
    ds = dcmread(path)
    assert len(ds.AnatomicRegionSequence) == 1
    item = ds.AnatomicRegionSequence[0]
    assert (item.CodeValue, item.CodingSchemeDesignator, item.CodeMeaning) == (
        code, "SCT", meaning)
    assert ("Laterality" in ds) is paired
    if paired:  # Type 2C: present, empty (the station does not record the side)
        assert ds["Laterality"].is_empty
    assert check_required(ds, paired=paired) == []
    assert missing_attributes(ds) == {}
    if paired:
        del ds.Laterality
        assert missing_attributes(ds) == {"General Series": ["Laterality"]}


def test_immersion_media_are_dicom_enumerated_values(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"GEL not DICOM Immersion Media values; use "
                       r"ULTRASOUND_GEL, ALCOHOL, WATER, MINERAL_OIL, PLASTIC_CAP"):
        DermoscopeOptics("CONTACT", ("GEL",))
    from skinstation.settings import InteropSettings  # refused when the settings are read
    with pytest.raises(ValueError, match=r"interop.immersion_media GEL not DICOM Immersion "
                       r"Media values; use ULTRASOUND_GEL, ALCOHOL"):
        InteropSettings(contact_method="CONTACT", immersion_media=("GEL",))
    with pytest.raises(ValueError, match=r"contact method 'contact' is not one of DICOM's "
                       r"CONTACT, NON_CONTACT"):
        DermoscopeOptics("contact")
    optics = DermoscopeOptics("CONTACT", ("ULTRASOUND_GEL", "ALCOHOL"), 10.0)
    ds = dcmread(write_capture(export_record(), optics, tmp_path))
    assert ds.ContactMethod == "CONTACT"
    assert list(ds.ImmersionMedia) == ["ULTRASOUND_GEL", "ALCOHOL"]
    assert ds["ImmersionMedia"].VR == "CS"
    # Non-contact: no Immersion Media (Type 2C, its condition does not hold).
    ds = build_dataset(export_record(), DermoscopeOptics("NON_CONTACT", (), 0.0))
    assert "ImmersionMedia" not in ds
    assert ds["OpticalMagnificationFactor"].is_empty  # Type 2: magnification not known


def test_missing_attributes_reports_types_and_enumerated_values() -> None:
    ds = build_dataset(export_record(), DermoscopeOptics())
    assert missing_attributes(ds) == {}
    ds.RecognizableVisualFeatures = ""
    ds.LightSourcePolarization = "CROSS"
    del ds.ContactMethod
    ds.Modality = "XC"
    assert missing_attributes(ds) == {
        "Dermoscopic Image": ["RecognizableVisualFeatures", "ContactMethod",
                              "LightSourcePolarization (POLARIZED/NON_POLARIZED/)",
                              "RecognizableVisualFeatures (YES/NO)"],
        "General Series": ["Modality (DMS)"]}
    ds = build_dataset(export_record(), DermoscopeOptics("CONTACT", ("WATER",)))
    ds.ImmersionMedia = "GEL"
    assert missing_attributes(ds) == {"Dermoscopic Image": [
        "ImmersionMedia (ULTRASOUND_GEL/ALCOHOL/WATER/MINERAL_OIL/PLASTIC_CAP)"]}
    del ds.ImmersionMedia
    assert missing_attributes(ds) == {"Dermoscopic Image": ["ImmersionMedia"]}


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
        assert missing_attributes(ds) == {}
        assert ds.SOPClassUID == DERMOSCOPIC_PHOTOGRAPHY
        assert ds.file_meta.MediaStorageSOPClassUID == DERMOSCOPIC_PHOTOGRAPHY
        assert ds.file_meta.TransferSyntaxUID == ExplicitVRLittleEndian
        assert ds.SpecificCharacterSet == "ISO_IR 192"
        assert ds.Modality == "DMS"
        assert "Laterality" not in ds  # the back is not a paired body part
        assert ds.PatientID == PSEUDONYM
        assert str(ds.PatientName) == ""
        assert (ds.PatientBirthDate, ds.PatientSex) == ("", "")
        assert list(ds.ImageType) == ["ORIGINAL", "PRIMARY"]
        assert (ds.SamplesPerPixel, ds.PhotometricInterpretation, ds.PlanarConfiguration) == (
            3, "RGB", 0)
        assert (ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation) == (
            8, 8, 7, 0)
        assert ds.AcquisitionContextSequence == []
        assert (ds.BurnedInAnnotation, ds.RecognizableVisualFeatures) == ("NO", "NO")
        assert ds.ContactMethod == "NON_CONTACT"
        assert "ImmersionMedia" not in ds
        assert ds["EmitterColorTemperature"].is_empty
        assert float(ds.OpticalMagnificationFactor) == 10.0
        for keyword, (tag, vr) in TAGS.items():
            if keyword in ds:  # the VR as written (Explicit VR) and the tag
                assert (ds[keyword].tag, ds[keyword].VR) == (tag, vr)
        assert len(ds.AnatomicRegionSequence) == 1
        region = ds.AnatomicRegionSequence[0]
        assert (region.CodeValue, region.CodingSchemeDesignator, region.CodeMeaning) == (
            "77568009", "SCT", "Back")
        assert NOT_A_DIAGNOSIS in ds.ImageComments
        assert ds.LossyImageCompression == "00"
        assert "LossyImageCompressionMethod" not in ds
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
                     "immersion_media": ["ULTRASOUND_GEL"]})
        ds = dcmread(export_capture_dicom(made.service, capture.id, tmp_path / "sent"))
        assert str(ds.PatientName) == NAME
        assert ds.PatientID == PSEUDONYM
        assert (ds.ContactMethod, ds.ImmersionMedia) == ("CONTACT", "ULTRASOUND_GEL")
        region = ds.AnatomicRegionSequence[0]
        assert (region.CodeValue, region.CodingSchemeDesignator, region.CodeMeaning) == (
            "89545001", "SCT", "Face")
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
