"""Body sites of the station (HAM10000's localisation codes) as SNOMED CT anatomic regions.

DICOM codes them in the Anatomic Region Sequence with coding scheme designator ``SCT``; FHIR
as ``http://snomed.info/sct``. The Code Meaning is DICOM's own meaning for the concept.
Sites without a single SNOMED CT region (``acral``: palm or sole; ``unknown``) fall back to
"Skin", which is always true of a skin-lesion photograph.

Verified against (no code is from memory):

* pydicom 3.0.2 (venv) ``pydicom/sr/_concepts_dict.py``: Scalp 41695006, Face 89545001,
  Ear 117590005, Back 77568009 (CID 4 Anatomic Region); Neck 45048000, Chest 816094009,
  Abdomen 818981001, Upper limb 53120007, Hand 85562004, Lower limb 61685007, Foot
  56459004 (CID 4031 Common Anatomic Region); Trunk 22943007 (CID 8134); Skin 39937001
  (CID 4029 Dermatology Anatomic Site). 51185008 is only "Thoracic structure" there, in no
  CID, and 818983003 is not there at all.
* ImagingDataCommons/highdicom ``src/highdicom/_standard/anatomic_regions.json`` (PS3.16
  Annex L): the same codes and meanings for SCALP, FACE, EAR, NECK, CHEST, ABDOMEN, BACK,
  TRUNK, UPPERLIMB, HAND, LOWERLIMB, FOOT.
* bvdh/dicom-terminology-in-fhir ``input/fsh/ValueSet-dicom-cid-4031-CommonAnatomicRegion.fsh``
  (Abdomen 818981001, Chest 816094009, Trunk 22943007) and
  ``ValueSet-dicom-cid-4029-DermatologyAnatomicSite.fsh`` (39937001 "Skin").
* 71934003 is in no DICOM context group found; its SNOMED CT term "Genital structure" is
  from HL7/fhir-mCODE-ig ``input/fsh/VS_Radiotherapy.fsh``.
* Which regions are paired (ear, limbs, hands, feet) is anatomy; PS3.16 Annex L's own
  laterality column was not among the stored sources.
"""

from __future__ import annotations

from dataclasses import dataclass

SNOMED_CT_DICOM = "SCT"
"""The coding scheme designator of SNOMED CT in DICOM."""

SNOMED_CT_FHIR = "http://snomed.info/sct"
"""The code system URI of SNOMED CT in FHIR."""


@dataclass(frozen=True)
class AnatomicRegion:
    """A SNOMED CT body structure.

    Attributes:
        code: The SNOMED CT concept id.
        meaning: DICOM's Code Meaning for it (also the FHIR display).
        paired: A paired body part (left or right), for which DICOM wants Laterality.
    """

    code: str
    meaning: str
    paired: bool = False


SKIN = AnatomicRegion("39937001", "Skin")
"""The fallback region: the site is not known or has no single SNOMED CT region."""

BODY_SITES: dict[str, AnatomicRegion] = {
    "scalp": AnatomicRegion("41695006", "Scalp"),
    "face": AnatomicRegion("89545001", "Face"),
    "ear": AnatomicRegion("117590005", "Ear", paired=True),
    "neck": AnatomicRegion("45048000", "Neck"),
    "chest": AnatomicRegion("816094009", "Chest"),
    "abdomen": AnatomicRegion("818981001", "Abdomen"),
    "back": AnatomicRegion("77568009", "Back"),
    "trunk": AnatomicRegion("22943007", "Trunk"),
    "genital": AnatomicRegion("71934003", "Genital structure"),
    "upper_extremity": AnatomicRegion("53120007", "Upper limb", paired=True),
    "hand": AnatomicRegion("85562004", "Hand", paired=True),
    "lower_extremity": AnatomicRegion("61685007", "Lower limb", paired=True),
    "foot": AnatomicRegion("56459004", "Foot", paired=True),
    "acral": SKIN,
    "unknown": SKIN,
}
"""Station body-site code → SNOMED CT region (every site of the patient screen's body map)."""


def anatomic_region(body_site: str) -> AnatomicRegion:
    """The SNOMED CT region of a station body-site code (:data:`SKIN` for any other code)."""
    return BODY_SITES.get(body_site, SKIN)


def is_paired(body_site: str) -> bool:
    """Whether the site is a paired body part (the station does not record which side)."""
    return anatomic_region(body_site).paired


PAIRED_CODES = frozenset(region.code for region in BODY_SITES.values() if region.paired)
"""SNOMED CT codes of the paired regions of :data:`BODY_SITES`."""
