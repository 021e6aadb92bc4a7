"""A capture as a DICOM Dermoscopic Photography image (PS3.3 A.32.11), built with pydicom.

The modules written (every Mandatory module of the IOD, see
:data:`.dicom_standard.IOD_MODULES`), with what fills them:

* Patient: Patient ID = the pseudonym; Patient's Name only when names may leave the
  station (else empty, as Type 2 allows); birth date and sex empty.
* General Study: the visit (Study Instance UID from its UUID, Study ID = visit number).
* General Series: Modality ``DMS``; one series per multispectral shot, else per capture;
  Laterality present and empty (Type 2C, side unknown) for a paired body part.
* General Equipment, Enhanced General Equipment: SkinStation, the device id, the version.
* General Acquisition: the acquisition date-time. General Image, Image Pixel, VL Image,
  Acquisition Context (empty).
* Dermoscopic Image: Light Source Polarization from the band (:data:`BAND_ILLUMINATION`),
  Contact Method, Immersion Media and Optical Magnification Factor from the settings.
* VL Image / General Image (optional here): Anatomic Region Sequence from the body site
  (SNOMED CT, :mod:`.body_sites`).
* SOP Common: SOP Class Dermoscopic Photography Image Storage, UIDs from the capture's UUID.

Image Comments carry the band, the stored prediction and the not-a-diagnosis notice.
Every tag, Type and enumerated value was checked against the sources listed in
:mod:`.dicom_standard`; :func:`missing_attributes` checks a written file against
:data:`.dicom_standard.MODULE_ATTRIBUTES`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sized
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from pydicom import dcmread
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import PYDICOM_IMPLEMENTATION_UID, UID, ExplicitVRLittleEndian
from pydicom.valuerep import DSfloat

from skinstation.interop.body_sites import PAIRED_CODES, anatomic_region, is_paired
from skinstation.interop.dicom_standard import (
    CONTACT,
    CONTACT_METHODS,
    IMMERSION_MEDIA,
    MODALITY,
    MODULE_ATTRIBUTES,
    NON_CONTACT,
    NON_POLARIZED,
    POLARIZED,
    SNOMED_CT_DESIGNATOR,
    SOP_CLASS_UID,
    SPECIFIC_CHARACTER_SET,
)
from skinstation.interop.records import NOT_A_DIAGNOSIS, ExportCapture

__all__ = ["BAND_ILLUMINATION", "MODALITY", "SOP_CLASS_UID", "BandIllumination",
           "DermoscopeOptics", "band_illumination", "build_dataset", "missing_attributes",
           "write_capture"]


@dataclass(frozen=True)
class BandIllumination:
    """How a SkinStation band lit the skin, in DICOM terms.

    Attributes:
        polarization: Light Source Polarization (``POLARIZED`` or ``NON_POLARIZED``).
        description: The band in words (Image Comments).
        wavelength_nm: Peak wavelength of a narrow band (None for white light).
    """

    polarization: str
    description: str
    wavelength_nm: int | None = None


BAND_ILLUMINATION: dict[str, BandIllumination] = {
    "white": BandIllumination(NON_POLARIZED, "white light"),
    "cross_polarised": BandIllumination(POLARIZED, "cross-polarised white light"),
    "uv_365": BandIllumination(NON_POLARIZED, "ultraviolet 365 nm", 365),
    "violet_405": BandIllumination(NON_POLARIZED, "violet 405 nm", 405),
    "amber_590": BandIllumination(NON_POLARIZED, "amber 590 nm", 590),
    "red_660": BandIllumination(NON_POLARIZED, "red 660 nm", 660),
    "nir_850": BandIllumination(NON_POLARIZED, "near-infrared 850 nm", 850),
}
"""Every band of :mod:`skinstation.camera.illumination` → its DICOM illumination.

Only ``cross_polarised`` is a polarised band of the station (its own name says so); the
other LEDs light the skin directly. That mapping is SkinStation's, not the standard's.
"""


def band_illumination(band: str) -> BandIllumination:
    """The illumination of a band (an unknown band: non-polarised, named as stored)."""
    return BAND_ILLUMINATION.get(band, BandIllumination(NON_POLARIZED, band))


@dataclass(frozen=True)
class DermoscopeOptics:
    """The dermatoscope's fixed optics (from ``InteropSettings``).

    Attributes:
        contact_method: ``CONTACT`` or ``NON_CONTACT`` (Contact Method).
        immersion_media: With ``CONTACT``: the media, each one of
            :data:`.dicom_standard.IMMERSION_MEDIA` (e.g. ``ULTRASOUND_GEL``).
        optical_magnification: The optical magnification; 0 when not known (left empty).

    Raises:
        ValueError: If the contact method or (with ``CONTACT``) a medium is not a DICOM
            enumerated value.
    """

    contact_method: str = NON_CONTACT
    immersion_media: tuple[str, ...] = ()
    optical_magnification: float = 0.0

    def __post_init__(self) -> None:
        if self.contact_method not in CONTACT_METHODS:
            raise ValueError(f"contact method {self.contact_method!r} is not one of DICOM's "
                             f"{', '.join(CONTACT_METHODS)}")
        unknown = [m for m in self.immersion_media if m not in IMMERSION_MEDIA]
        if self.contact_method == CONTACT and unknown:
            raise ValueError(f"immersion media {', '.join(unknown)} not DICOM Immersion Media "
                             f"values; use {', '.join(IMMERSION_MEDIA)}")


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
    ds.SpecificCharacterSet = SPECIFIC_CHARACTER_SET
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
    if is_paired(record.body_site):
        ds.Laterality = ""  # Type 2C: a paired body part, side not recorded by the station
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
    # General Acquisition (all Type 3)
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
    ds.EmitterColorTemperature = None  # Type 2: the LEDs' colour temperature is not known
    ds.ContactMethod = optics.contact_method
    if optics.contact_method == CONTACT:  # Type 2C
        ds.ImmersionMedia = list(optics.immersion_media)
    ds.OpticalMagnificationFactor = (
        DSfloat(optics.optical_magnification, auto_format=True)
        if optics.optical_magnification > 0 else None)
    # VL Image / General Image: Anatomic Region Sequence (optional for this IOD), one item
    region = anatomic_region(record.body_site)
    item = Dataset()
    item.CodeValue = region.code
    item.CodingSchemeDesignator = SNOMED_CT_DESIGNATOR
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


_CONDITIONS: dict[str, Callable[[Dataset], bool]] = {
    "Laterality": lambda ds: _region_code(ds) in PAIRED_CODES,
    "ImmersionMedia": lambda ds: ds.get("ContactMethod") == CONTACT,
}
"""When a 1C/2C attribute is required; the export meets every other condition always."""

_ENUMERATED: dict[str, tuple[str, tuple[str, ...]]] = {
    "Modality": ("General Series", (MODALITY,)),
    "LightSourcePolarization": ("Dermoscopic Image", (POLARIZED, NON_POLARIZED, "")),
    "ContactMethod": ("Dermoscopic Image", (*CONTACT_METHODS, "")),
    "RecognizableVisualFeatures": ("Dermoscopic Image", ("YES", "NO")),
    "LossyImageCompression": ("VL Image", ("00", "01", "")),
}
"""Single-valued attributes with Enumerated Values (empty: allowed for Type 2)."""


def missing_attributes(ds: Dataset) -> dict[str, list[str]]:
    """Module → what ``ds`` lacks of :data:`.dicom_standard.MODULE_ATTRIBUTES`.

    Type 1/1C attributes must have a value, Type 2/2C ones be present (possibly empty);
    a 1C/2C one only when its condition holds. Also reported: a wrong SOP class, values
    outside the Enumerated Values, and an Anatomic Region item without its code triple.
    """
    missing: dict[str, list[str]] = {}
    for module, attributes in MODULE_ATTRIBUTES.items():
        for keyword, kind in attributes.items():
            condition = _CONDITIONS.get(keyword)
            if kind.endswith("C") and condition is not None and not condition(ds):
                continue
            if keyword not in ds or (kind.startswith("1") and _empty(ds[keyword].value)):
                missing.setdefault(module, []).append(keyword)
    if ds.get("SOPClassUID") != SOP_CLASS_UID:
        missing.setdefault("SOP Common", []).append("SOPClassUID (Dermoscopic Photography)")
    for keyword, (module, allowed) in _ENUMERATED.items():
        value = ds.get(keyword)
        if value is not None and str(value) not in allowed:
            missing.setdefault(module, []).append(f"{keyword} ({'/'.join(allowed)})")
    media = ds.get("ImmersionMedia")
    if media and any(m not in IMMERSION_MEDIA for m in _values(media)):
        missing.setdefault("Dermoscopic Image", []).append(
            f"ImmersionMedia ({'/'.join(IMMERSION_MEDIA)})")
    for item in ds.get("AnatomicRegionSequence") or []:
        for keyword in ("CodeValue", "CodingSchemeDesignator", "CodeMeaning"):
            if _empty(item.get(keyword)):
                missing.setdefault("VL Image", []).append(f"AnatomicRegionSequence/{keyword}")
    return missing


def _region_code(ds: Dataset) -> str | None:
    regions = ds.get("AnatomicRegionSequence") or []
    return str(regions[0].get("CodeValue")) if regions else None


def _values(value: object) -> list[str]:
    if isinstance(value, str):
        return [value]
    return [str(v) for v in value] if isinstance(value, Iterable) else [str(value)]


def _empty(value: object) -> bool:
    if value is None:
        return True
    if isinstance(value, Sized):
        return len(value) == 0
    return False

