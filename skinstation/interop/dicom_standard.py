"""What DICOM says about the Dermoscopic Photography Image IOD, as SkinStation uses it.

Every value here was checked against public copies of the standard's own tables (no value is
from memory). Sources, by what they settle:

* SOP Class UID ``1.2.840.10008.5.1.4.1.1.77.1.7`` "Dermoscopic Photography Image Storage":
  pydicom 3.0.2 (venv: ``pydicom/_uid_dict.py``, ``pydicom.uid``) and pynetdicom 3.0.4
  (``pynetdicom/sop_class.py``); the IOD is PS3.3 A.32.11.
* IOD module list and M/C/U usage (:data:`IOD_MODULES`): QIICR/dicom3tools
  ``libsrc/standard/iodcomp/vl.tpl`` (CompositeIOD "DermoscopicPhotographyImage") and
  ImagingDataCommons/highdicom ``src/highdicom/_standard/iod_module_map.json``
  ("dermoscopic-photography-image"). They agree except Frame of Reference (U in
  dicom3tools only); neither has a Dermoscopic series module.
* Dermoscopic Image module attributes and Types: QIICR/dicom3tools
  ``libsrc/standard/module/vl.tpl`` (Module "DermoscopicImage"); VL Image there too.
* Patient, General Study, General Series, General Equipment, Enhanced General Equipment,
  General Acquisition, General Image, Image Pixel, SOP Common: fedorov/dicom3tools
  ``libsrc/standard/module.tpl``; Acquisition Context: QIICR/dicom3tools
  ``libsrc/standard/module/acqctx.tpl``.
* Enumerated values: QIICR/dicom3tools ``libsrc/standard/strval/vl.tpl``
  (LightSourcePolarization, ContactMethod, ImmersionMedia, DermoscopyPhotographyModality
  = ``DMS``, VLImageType3) and ``strval/base.tpl`` (YesNoFull, ImageType1/2,
  LossyImageCompression ``00``/``01``, LossyImageCompressionMethod, Sex, Laterality
  ``R``/``L``, coding scheme designator ``SCT``); ``strval/charset.tpl`` (``ISO_IR 192``).
* Modality ``DMS`` = (DMS, DCM, "Dermoscopy") in CID 29/30/33: pydicom 3.0.2
  ``pydicom/sr/_concepts_dict.py``.
* Tags, keywords and VRs: pydicom 3.0.2 ``pydicom/_dicom_dict.py``, e.g. (0016,1001) CS
  LightSourcePolarization, (0016,1002) DS EmitterColorTemperature, (0016,1003) CS
  ContactMethod, (0016,1004) CS 1-n ImmersionMedia, (0016,1005) DS
  OpticalMagnificationFactor, (0028,0302) CS RecognizableVisualFeatures, (0008,2218) SQ
  AnatomicRegionSequence, (0020,0060) CS Laterality.

Of note: the Anatomic Region Sequence is not an attribute of the Dermoscopic Image module;
it is in VL Image (Type 1C, required for multi-frame images only) and General Image (Type 3
here), so for this single-frame IOD it is optional and SkinStation writes it as a courtesy.
"""

from __future__ import annotations

from pydicom.uid import DermoscopicPhotographyImageStorage

from skinstation.settings import DICOM_IMMERSION_MEDIA

SOP_CLASS_UID = DermoscopicPhotographyImageStorage
"""Dermoscopic Photography Image Storage (1.2.840.10008.5.1.4.1.1.77.1.7)."""

MODALITY = "DMS"
"""Modality of the IOD (dicom3tools DermoscopyPhotographyModality; DCM "Dermoscopy")."""

POLARIZED = "POLARIZED"
NON_POLARIZED = "NON_POLARIZED"
LIGHT_SOURCE_POLARIZATION = (POLARIZED, NON_POLARIZED)
"""Enumerated Values of Light Source Polarization (0016,1001)."""

CONTACT = "CONTACT"
NON_CONTACT = "NON_CONTACT"
CONTACT_METHODS = (CONTACT, NON_CONTACT)
"""Enumerated Values of Contact Method (0016,1003)."""

IMMERSION_MEDIA = DICOM_IMMERSION_MEDIA
"""Enumerated Values of Immersion Media (0016,1004), Type 2C when Contact Method is CONTACT."""

SNOMED_CT_DESIGNATOR = "SCT"
"""Coding Scheme Designator of SNOMED CT."""

SPECIFIC_CHARACTER_SET = "ISO_IR 192"
"""Unicode UTF-8 (the names and comments may be Korean)."""

IOD_MODULES: tuple[tuple[str, str, bool], ...] = (
    ("Patient", "M", True),
    ("Clinical Trial Subject", "U", False),
    ("General Study", "M", True),
    ("Patient Study", "U", False),
    ("Clinical Trial Study", "U", False),
    ("General Series", "M", True),
    ("Clinical Trial Series", "U", False),
    ("Frame of Reference", "U", False),
    ("General Equipment", "M", True),
    ("Enhanced General Equipment", "M", True),
    ("VL Photographic Equipment", "U", False),
    ("General Acquisition", "M", True),
    ("General Image", "M", True),
    ("General Reference", "U", False),
    ("Image Pixel", "M", True),
    ("Acquisition Context", "M", True),
    ("VL Image", "M", True),
    ("VL Photographic Acquisition", "U", False),
    ("Dermoscopic Image", "M", True),
    ("ICC Profile", "U", False),
    ("SOP Common", "M", True),
    ("Common Instance Reference", "U", False),
)
"""(module, usage, written by SkinStation) for every module of the IOD."""

MODULE_ATTRIBUTES: dict[str, dict[str, str]] = {
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
"""Type 1, 1C, 2 and 2C attributes of every module written (Type 3 ones are left out).

Conditions: Modality 1C (not Secondary Capture: always), Laterality 2C (a paired body part,
see :func:`.body_sites.is_paired`), Patient Orientation 2C (no Image Orientation (Patient):
always), Content Date/Time 2C and VL Content Time 1C (temporally related images: always
written), Planar Configuration 1C (Samples per Pixel > 1: always, RGB), Pixel Data 1C (no
Pixel Data Provider URL: always), Immersion Media 2C (Contact Method CONTACT), Specific
Character Set 1C (a non-default character set: always, ISO_IR 192).
"""
