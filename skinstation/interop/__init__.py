"""Exports of captures to hospital systems: DICOM files and C-STORE, FHIR R4 bundles.

Pure builders over :class:`~skinstation.interop.records.ExportCapture` (read from storage by
:mod:`skinstation.services.export`): :mod:`.dicom` (Dermoscopic Photography images),
:mod:`.pacs` (C-STORE), :mod:`.fhir` (DiagnosticReport bundles, POST), :mod:`.body_sites`
(SNOMED CT), :mod:`.dicom_standard` (the IOD's verified modules, Types and values). Every
export identifies the patient by the pseudonym and carries the not-a-diagnosis notice.
"""
