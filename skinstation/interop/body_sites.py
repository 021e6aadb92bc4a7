"""Body sites of the station (HAM10000's localisation codes) as SNOMED CT anatomic regions.

DICOM codes them in the Anatomic Region Sequence with coding scheme ``SCT`` (CID 4031
"Common Anatomic Regions" where it has the region); FHIR as ``http://snomed.info/sct``.
Sites without a single SNOMED CT region (``acral``: palm or sole; ``unknown``) fall back to
"Skin structure", which is always true of a skin-lesion photograph.
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
        meaning: Its preferred term (DICOM Code Meaning, FHIR display).
    """

    code: str
    meaning: str


SKIN = AnatomicRegion("39937001", "Skin structure")
"""The fallback region: the site is not known or has no single SNOMED CT region."""

BODY_SITES: dict[str, AnatomicRegion] = {
    "scalp": AnatomicRegion("41695006", "Scalp"),
    "face": AnatomicRegion("89545001", "Face"),
    "ear": AnatomicRegion("117590005", "Ear"),
    "neck": AnatomicRegion("45048000", "Neck"),
    "chest": AnatomicRegion("51185008", "Chest"),
    "abdomen": AnatomicRegion("818983003", "Abdomen"),
    "back": AnatomicRegion("77568009", "Back"),
    "trunk": AnatomicRegion("22943007", "Trunk"),
    "genital": AnatomicRegion("71934003", "Genitalia"),
    "upper_extremity": AnatomicRegion("53120007", "Upper limb"),
    "hand": AnatomicRegion("85562004", "Hand"),
    "lower_extremity": AnatomicRegion("61685007", "Lower limb"),
    "foot": AnatomicRegion("56459004", "Foot"),
    "acral": SKIN,
    "unknown": SKIN,
}
"""Station body-site code → SNOMED CT region (every site of the patient screen's body map)."""


def anatomic_region(body_site: str) -> AnatomicRegion:
    """The SNOMED CT region of a station body-site code (:data:`SKIN` for any other code)."""
    return BODY_SITES.get(body_site, SKIN)
