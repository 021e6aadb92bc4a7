"""A capture as a DICOM Dermoscopic Photography image (PS3.3 A.32.12), built with pydicom.

The modules written, with what fills them:

* Patient: Patient ID = the pseudonym; Patient's Name only when names may leave the
  station (else empty, as Type 2 allows); birth date and sex empty.
* General Study: the visit (Study Instance UID from its UUID, Study ID = visit number).
* General Series: Modality ``DMS``; one series per multispectral shot, else per capture.
* General Equipment, Enhanced General Equipment: SkinStation, the device id, the version.
* General Image, Image Pixel, VL Image, Acquisition Context (empty).
* Dermoscopic Image: polarisation from the band (:data:`BAND_ILLUMINATION`), contact
  method, immersion media and optical magnification from the settings, Anatomic Region
  Sequence from the body site (SNOMED CT, :mod:`.body_sites`).
* SOP Common: SOP Class Dermoscopic Photography Image Storage, UIDs from the capture's UUID.

Image Comments carry the band, the stored prediction and the not-a-diagnosis notice.
:data:`REQUIRED_ATTRIBUTES` lists every Type 1 and Type 2 attribute of these modules that
:func:`missing_attributes` checks a written file for.
"""

from __future__ import annotations

from collections.abc import Sized
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from pydicom import dcmread
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import (
    PYDICOM_IMPLEMENTATION_UID,
    UID,
    DermoscopicPhotographyImageStorage,
    ExplicitVRLittleEndian,
)

from skinstation.interop.body_sites import SNOMED_CT_DICOM, anatomic_region
from skinstation.interop.records import NOT_A_DIAGNOSIS, ExportCapture

SOP_CLASS_UID = DermoscopicPhotographyImageStorage
"""Dermoscopic Photography Image Storage (1.2.840.10008.5.1.4.1.1.77.1.7)."""

MODALITY = "DMS"
"""The DICOM modality of dermoscopy."""


@dataclass(frozen=True)
class BandIllumination:
    """How a SkinStation band lit the skin, in DICOM terms.

    Attributes:
        polarization: Light Source Polarization (``POLARIZED`` or ``NON_POLARIZED``).
        description: The band in words (Image Comments, Acquisition Device description).
        wavelength_nm: Peak wavelength of a narrow band (None for white light).
    """

    polarization: str
    description: str
    wavelength_nm: int | None = None


BAND_ILLUMINATION: dict[str, BandIllumination] = {
    "white": BandIllumination("NON_POLARIZED", "white light"),
    "cross_polarised": BandIllumination("POLARIZED", "cross-polarised white light"),
    "uv_365": BandIllumination("NON_POLARIZED", "ultraviolet 365 nm", 365),
    "violet_405": BandIllumination("NON_POLARIZED", "violet 405 nm", 405),
    "amber_590": BandIllumination("NON_POLARIZED", "amber 590 nm", 590),
    "red_660": BandIllumination("NON_POLARIZED", "red 660 nm", 660),
    "nir_850": BandIllumination("NON_POLARIZED", "near-infrared 850 nm", 850),
}
"""Every band of :mod:`skinstation.camera.illumination` → its DICOM illumination."""


def band_illumination(band: str) -> BandIllumination:
    """The illumination of a band (an unknown band: non-polarised, named as stored)."""
    return BAND_ILLUMINATION.get(band, BandIllumination("NON_POLARIZED", band))


@dataclass(frozen=True)
class DermoscopeOptics:
    """The dermatoscope's fixed optics (from ``InteropSettings``).

    Attributes:
        contact_method: ``CONTACT`` or ``NON_CONTACT``.
        immersion_media: With ``CONTACT``: the media (Immersion Media values).
        optical_magnification: The optical magnification; 0 when not known (left empty).
    """

    contact_method: str = "NON_CONTACT"
    immersion_media: tuple[str, ...] = ()
    optical_magnification: float = 0.0


REQUIRED_ATTRIBUTES: dict[str, tuple[str, ...]] = {
    "Patient": ("PatientName", "PatientID", "PatientBirthDate", "PatientSex"),
    "General Study": ("StudyInstanceUID", "StudyDate", "StudyTime", "ReferringPhysicianName",
                      "StudyID", "AccessionNumber"),
    "General Series": ("Modality", "SeriesInstanceUID", "SeriesNumber"),
    "General Equipment": ("Manufacturer",),
    "Enhanced General Equipment": ("Manufacturer", "ManufacturerModelName",
                                   "DeviceSerialNumber", "SoftwareVersions"),
    "General Image": ("InstanceNumber", "PatientOrientation", "ContentDate", "ContentTime"),
    "Image Pixel": ("SamplesPerPixel", "PhotometricInterpretation", "Rows", "Columns",
                    "BitsAllocated", "BitsStored", "HighBit", "PixelRepresentation",
                    "PlanarConfiguration", "PixelData"),
    "Acquisition Context": ("AcquisitionContextSequence",),
    "VL Image": ("ImageType", "PhotometricInterpretation", "BitsAllocated", "BitsStored",
                 "HighBit", "PixelRepresentation", "SamplesPerPixel", "PlanarConfiguration",
                 "ContentTime", "LossyImageCompression"),
    "Dermoscopic Image": ("RecognizableVisualFeatures", "LightSourcePolarization",
                          "EmitterColorTemperature", "ContactMethod",
                          "OpticalMagnificationFactor", "AnatomicRegionSequence"),
    "SOP Common": ("SOPClassUID", "SOPInstanceUID", "SpecificCharacterSet"),
}
"""Type 1 and 2 attributes (and 1C/2C ones this export always meets) of each module.

Type 1 attributes must have a value, Type 2 ones must be present (possibly empty); both
kinds are listed here, and :data:`TYPE1_ATTRIBUTES` says which must have a value.
"""

TYPE1_ATTRIBUTES = frozenset({
    "StudyInstanceUID", "Modality", "SeriesInstanceUID", "Manufacturer",
    "ManufacturerModelName", "DeviceSerialNumber", "SoftwareVersions", "SamplesPerPixel",
    "PhotometricInterpretation", "Rows", "Columns", "BitsAllocated", "BitsStored", "HighBit",
    "PixelRepresentation", "PlanarConfiguration", "PixelData", "ImageType", "ContentTime",
    "RecognizableVisualFeatures", "AnatomicRegionSequence", "SOPClassUID", "SOPInstanceUID",
    "SpecificCharacterSet", "PatientID", "ContactMethod", "LightSourcePolarization",
})
"""Attributes of :data:`REQUIRED_ATTRIBUTES` that this export always gives a value."""


def _da(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y%m%d")


def _tm(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%H%M%S.%f")


def _comments(record: ExportCapture) -> str:
    """Image Comments (LT): band, prediction, notice."""
    lines = [f"SkinStation capture {record.capture_uid}, "
             f"{band_illumination(record.band).description}."]
    prediction = record.prediction
    if prediction is not None:
        groups = ", ".join(f"{group} {probability:.1%}" for group, probability
                           in sorted(prediction.group_probabilities.items()))
        referral = {True: "yes", False: "no", None: "not assessed"}[prediction.referral]
        lines.append(f"Model {prediction.model_version}: decision {prediction.decision}; "
                     f"referral {referral}; {groups}.")
    lines.append(NOT_A_DIAGNOSIS)
    return " ".join(lines)


def build_dataset(record: ExportCapture, optics: DermoscopeOptics) -> Dataset:
    """The capture as a Dermoscopic Photography image dataset (with its file meta).

    Args:
        record: The capture (its patient name already cleared unless names may be sent).
        optics: The dermatoscope's contact method, immersion media and magnification.

    Returns:
        The dataset, Explicit VR Little Endian, uncompressed RGB pixels.

    Raises:
        ValueError: If the pixels are not RGB ``uint8``.
    """
    pixels = record.pixels
    if pixels.ndim != 3 or pixels.shape[2] != 3 or pixels.dtype.name != "uint8":
        raise ValueError(f"expected RGB uint8 pixels, got {pixels.dtype} {pixels.shape}")
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = SOP_CLASS_UID
    meta.MediaStorageSOPInstanceUID = UID(record.instance_uid)
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID
    ds = Dataset()
    ds.file_meta = meta
    ds.SpecificCharacterSet = "ISO_IR 192"
    # SOP Common
    ds.SOPClassUID = SOP_CLASS_UID
    ds.SOPInstanceUID = record.instance_uid
    ds.InstanceCreationDate = _da(record.capture_time)
    ds.InstanceCreationTime = _tm(record.capture_time)
    ds.TimezoneOffsetFromUTC = "+0000"
    # Patient: the pseudonym is the identity
    ds.PatientName = record.patient_name or ""
    ds.PatientID = record.patient_pseudonym
    ds.IssuerOfPatientID = "SkinStation pseudonym"
    ds.PatientBirthDate = ""
    ds.PatientSex = ""
    # General Study: the visit
    ds.StudyInstanceUID = record.study_uid
    ds.StudyDate = _da(record.visit_opened_at)
    ds.StudyTime = _tm(record.visit_opened_at)
    ds.ReferringPhysicianName = ""
    ds.StudyID = str(record.visit_number)[:16]
    ds.AccessionNumber = ""
    ds.StudyDescription = "SkinStation skin-lesion triage visit"
    # General Series
    ds.Modality = MODALITY
    ds.SeriesInstanceUID = record.series_uid
    ds.SeriesNumber = 1
    ds.SeriesDescription = ("multispectral dermoscopy" if record.multispectral_group_id
                            else "dermoscopy")
    # General Equipment + Enhanced General Equipment
    ds.Manufacturer = "SkinStation"
    ds.ManufacturerModelName = "SkinStation capture station"
    ds.DeviceSerialNumber = record.device_id[:64] or "unknown"
    ds.SoftwareVersions = record.software_version
    ds.StationName = record.station_id[:16]
    # General Image
    ds.InstanceNumber = (record.multispectral_index or 0) + 1
    ds.PatientOrientation = ""
    ds.ContentDate = _da(record.capture_time)
    ds.ContentTime = _tm(record.capture_time)
    ds.AcquisitionDateTime = record.capture_time.astimezone(UTC).strftime("%Y%m%d%H%M%S.%f")
    ds.ImageType = ["ORIGINAL", "PRIMARY"]
    ds.ImageComments = _comments(record)
    ds.BurnedInAnnotation = "NO"
    ds.LossyImageCompression = "01" if record.lossy else "00"
    if record.image_media_type == "image/jpeg":
        ds.LossyImageCompressionMethod = "ISO_10918_1"
    # Image Pixel (VL Image constraints: RGB, 8 bits, colour-by-pixel)
    ds.SamplesPerPixel = 3
    ds.PhotometricInterpretation = "RGB"
    ds.PlanarConfiguration = 0
    ds.Rows, ds.Columns = int(pixels.shape[0]), int(pixels.shape[1])
    ds.BitsAllocated = 8
    ds.BitsStored = 8
    ds.HighBit = 7
    ds.PixelRepresentation = 0
    ds.PixelData = pixels.tobytes()
    # Acquisition Context (Type 2: present, empty)
    ds.AcquisitionContextSequence = []
    # Dermoscopic Image
    illumination = band_illumination(record.band)
    ds.RecognizableVisualFeatures = "NO"
    ds.LightSourcePolarization = illumination.polarization
    ds.EmitterColorTemperature = None
    ds.ContactMethod = optics.contact_method
    if optics.contact_method == "CONTACT":
        ds.ImmersionMedia = list(optics.immersion_media)
    ds.OpticalMagnificationFactor = (optics.optical_magnification
                                     if optics.optical_magnification > 0 else None)
    region = anatomic_region(record.body_site)
    item = Dataset()
    item.CodeValue = region.code
    item.CodingSchemeDesignator = SNOMED_CT_DICOM
    item.CodeMeaning = region.meaning
    ds.AnatomicRegionSequence = [item]
    return ds


def write_capture(record: ExportCapture, optics: DermoscopeOptics, out_dir: Path) -> Path:
    """Write the capture as ``<SOP Instance UID>.dcm`` in ``out_dir`` and check it back.

    Returns:
        The file written.

    Raises:
        ValueError: If the file read back misses a required attribute.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"{record.instance_uid}.dcm"
    build_dataset(record, optics).save_as(path, enforce_file_format=True)
    missing = missing_attributes(dcmread(path))
    if missing:
        raise ValueError(f"{path.name} misses required DICOM attributes: {missing}")
    return path


def missing_attributes(ds: Dataset) -> dict[str, list[str]]:
    """Module → required attributes ``ds`` lacks (or leaves empty where Type 1).

    Also checks the SOP class, the modality and the Anatomic Region code (Type 1 inside).
    """
    missing: dict[str, list[str]] = {}
    for module, keywords in REQUIRED_ATTRIBUTES.items():
        for keyword in keywords:
            if keyword not in ds or (keyword in TYPE1_ATTRIBUTES and _empty(ds[keyword].value)):
                missing.setdefault(module, []).append(keyword)
    if ds.get("SOPClassUID") != SOP_CLASS_UID:
        missing.setdefault("SOP Common", []).append("SOPClassUID (Dermoscopic Photography)")
    if ds.get("Modality") != MODALITY:
        missing.setdefault("General Series", []).append("Modality (DMS)")
    regions = ds.get("AnatomicRegionSequence") or []
    for item in regions:
        for keyword in ("CodeValue", "CodingSchemeDesignator", "CodeMeaning"):
            if _empty(item.get(keyword)):
                missing.setdefault("Dermoscopic Image", []).append(
                    f"AnatomicRegionSequence/{keyword}")
    if ds.get("ContactMethod") == "CONTACT" and "ImmersionMedia" not in ds:
        missing.setdefault("Dermoscopic Image", []).append("ImmersionMedia")
    return missing


def _empty(value: object) -> bool:
    if value is None:
        return True
    if isinstance(value, Sized):
        return len(value) == 0
    return False

