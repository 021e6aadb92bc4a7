"""Labelled image sources: HAM10000, PAD-UFES-20 and a generic ``image,dx`` manifest.

Every loader returns :class:`Record` objects. A bad row (unknown diagnosis code, missing or
unreadable image) raises :class:`DataSourceError` naming the file and row, unless the caller
asks for ``skip_bad=True``; then the row is skipped and counted in :class:`LoadReport`.

A source spec is ``kind:path`` (``ham10000:../shared/data/ham10000``,
``pad-ufes-20:../shared/data/pad-ufes-20``, ``isic-archive:../shared/data/isic-archive``,
``manifest:cases.csv``) or a bare path whose layout is recognised.
"""

from __future__ import annotations

import csv
import hashlib
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from PIL import Image, UnidentifiedImageError

from skinstation.inference.taxonomy import Taxonomy, load_taxonomy


class DataSourceError(ValueError):
    """A data source or one of its rows is unusable; the message names the file."""


@dataclass(frozen=True)
class Record:
    """One labelled image.

    Attributes:
        image_path: Absolute path of the image file.
        image_id: Identifier unique within the source.
        dx: Fine class code (taxonomy ``classes``).
        lesion_id: Lesion identifier (one lesion may have several images).
        patient_id: Patient identifier ("" if unknown; HAM10000 has none).
        source: ``ham10000``, ``pad-ufes-20``, ``isic-archive`` or ``manifest``.
        true_group: Triage group when it differs from ``dx``'s (e.g. PAD's SCC → skin_cancer).
        attributes: Subgroup metadata (sex, age, site, fitzpatrick, dx_type...).
    """

    image_path: Path
    image_id: str
    dx: str
    lesion_id: str
    patient_id: str = ""
    source: str = "manifest"
    true_group: str = ""
    attributes: dict[str, str] = field(default_factory=dict, hash=False, compare=False)

    @property
    def split_key(self) -> str:
        """The unit that must never cross splits: the patient if known, else the lesion."""
        return self.patient_id or self.lesion_id

    def group(self, taxonomy: Taxonomy) -> str:
        """The triage group this record truly belongs to."""
        return self.true_group or taxonomy.group_of[self.dx]


@dataclass
class LoadReport:
    """What a loader read and what it skipped (by reason)."""

    source: str
    loaded: int = 0
    skipped: Counter[str] = field(default_factory=Counter)
    examples: list[str] = field(default_factory=list)

    def skip(self, reason: str, detail: str) -> None:
        """Count one skipped row, keeping a few examples for the log."""
        self.skipped[reason] += 1
        if len(self.examples) < 10:
            self.examples.append(detail)

    def summary(self) -> str:
        """One line for logs and the CLI."""
        skipped = ", ".join(f"{n} {why}" for why, n in sorted(self.skipped.items())) or "none"
        return f"{self.source}: {self.loaded} images loaded, skipped: {skipped}"


def _check_image(path: Path, verify: bool) -> str | None:
    """Return why the image is unusable, or None."""
    if not path.is_file():
        return "missing image"
    if not verify:
        return None
    try:
        with Image.open(path) as image:
            image.verify()
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError):
        return "unreadable image"
    return None


def _read_csv(path: Path, required: set[str]) -> list[dict[str, str]]:
    if not path.is_file():
        raise DataSourceError(f"metadata file not found: {path}")
    with open(path, newline="", encoding="utf-8") as stream:
        reader = csv.DictReader(stream)
        missing = required - set(reader.fieldnames or [])
        if missing:
            raise DataSourceError(f"{path} lacks column(s): {', '.join(sorted(missing))}")
        return list(reader)


def _accept(
    report: LoadReport, skip_bad: bool, problem: str | None, where: str
) -> bool:
    if problem is None:
        return True
    if not skip_bad:
        raise DataSourceError(f"{problem}: {where}")
    report.skip(problem, where)
    return False


def _usable_row(report: LoadReport, skip_bad: bool, verify_images: bool, taxonomy: Taxonomy,
                code: str, image: Path, where: str) -> str | None:
    """A row's fine class code (lower case), or None when the row is skipped.

    Raises:
        DataSourceError: Unknown code or unusable image, unless ``skip_bad``.
    """
    dx = code.strip().lower()
    problem = f"unknown diagnosis code {code!r}" if dx not in taxonomy.classes else None
    if not _accept(report, skip_bad, problem, where):
        return None
    if not _accept(report, skip_bad, _check_image(image, verify_images), f"{image} ({where})"):
        return None
    return dx


def load_ham10000(
    root: str | Path,
    skip_bad: bool = False,
    verify_images: bool = False,
    taxonomy: Taxonomy | None = None,
) -> tuple[list[Record], LoadReport]:
    """Load HAM10000 (``HAM10000_metadata.csv`` + ``images/<image_id>.jpg``).

    Args:
        root: Folder holding the metadata CSV and ``images/``.
        skip_bad: Count and skip bad rows instead of raising.
        verify_images: Also check that each image decodes (slower).
        taxonomy: Taxonomy to validate codes against (bundled by default).

    Returns:
        The records and the load report.
    """
    root = Path(root).resolve()
    taxonomy = taxonomy or load_taxonomy()
    csv_path = root / "HAM10000_metadata.csv"
    rows = _read_csv(csv_path, {"lesion_id", "image_id", "dx"})
    report, records = LoadReport("ham10000"), []
    for line, row in enumerate(rows, start=2):
        image = root / "images" / f"{row['image_id']}.jpg"
        where = f"{csv_path}:{line} ({image.name})"
        dx = row["dx"].strip()
        problem = f"unknown diagnosis code {dx!r}" if dx not in taxonomy.classes else None
        if not _accept(report, skip_bad, problem, where):
            continue
        if not _accept(report, skip_bad, _check_image(image, verify_images), f"{image} ({where})"):
            continue
        attributes = {k: (row.get(k) or "").strip() for k in ("sex", "age", "localization")}
        attributes["dx_type"] = (row.get("dx_type") or "").strip()
        records.append(
            Record(image, row["image_id"], dx, row["lesion_id"], "", "ham10000", "", attributes)
        )
    report.loaded = len(records)
    return records, report


def load_pad_ufes20(
    root: str | Path,
    skip_bad: bool = False,
    verify_images: bool = False,
    taxonomy: Taxonomy | None = None,
) -> tuple[list[Record], LoadReport]:
    """Load PAD-UFES-20 (``metadata.csv`` + ``images/``), mapping ``diagnostic`` to HAM codes.

    Rows whose image is absent from ``images/`` are counted as ``not in subset`` (the shared
    copy holds 686 of the 2,298 images); that is the layout, not an error.
    """
    root = Path(root).resolve()
    taxonomy = taxonomy or load_taxonomy()
    csv_path = root / "metadata.csv"
    rows = _read_csv(csv_path, {"patient_id", "lesion_id", "img_id", "diagnostic"})
    present = {p.stem for p in (root / "images").glob("*")}
    report, records = LoadReport("pad-ufes-20"), []
    for line, row in enumerate(rows, start=2):
        stem = Path(row["img_id"]).stem
        if stem not in present:
            report.skip("not in subset", row["img_id"])
            continue
        image = next((root / "images" / f"{stem}{ext}" for ext in (".jpg", ".png")
                      if (root / "images" / f"{stem}{ext}").is_file()), root / "images" / stem)
        where = f"{csv_path}:{line} ({image.name})"
        mapping = taxonomy.pad_ufes_20_map.get(row["diagnostic"].strip())
        problem = None if mapping else f"unknown diagnosis code {row['diagnostic']!r}"
        if not _accept(report, skip_bad, problem, where):
            continue
        if not _accept(report, skip_bad, _check_image(image, verify_images), f"{image} ({where})"):
            continue
        assert mapping is not None
        attributes = {
            "sex": (row.get("gender") or "").strip().lower(),
            "age": (row.get("age") or "").strip(),
            "localization": (row.get("region") or "").strip().lower(),
            "fitzpatrick": (row.get("fitspatrick") or "").strip().replace(".0", ""),
            "diagnostic": row["diagnostic"].strip(),
            "biopsed": (row.get("biopsed") or "").strip(),
        }
        records.append(
            Record(
                image, stem, mapping["dx"], f"{row['patient_id']}/{row['lesion_id']}",
                row["patient_id"], "pad-ufes-20", mapping.get("group", ""), attributes,
            )
        )
    report.loaded = len(records)
    return records, report


def load_isic_archive(
    root: str | Path,
    skip_bad: bool = False,
    verify_images: bool = False,
    taxonomy: Taxonomy | None = None,
) -> tuple[list[Record], LoadReport]:
    """Load the ISIC-archive set (``metadata.csv`` with ``image_id,dx,lesion_id`` + ``images/``).

    Images from other clinics and devices than HAM10000's (mel/nv/bkl). An image without a
    ``lesion_id`` is its own lesion; images sharing one stay together in every split.
    """
    root = Path(root).resolve()
    taxonomy = taxonomy or load_taxonomy()
    csv_path = root / "metadata.csv"
    rows = _read_csv(csv_path, {"image_id", "dx", "lesion_id"})
    report, records = LoadReport("isic-archive"), []
    for line, row in enumerate(rows, start=2):
        image_id = row["image_id"].strip()
        image = root / "images" / f"{image_id}.jpg"
        where = f"{csv_path}:{line} ({image.name})"
        dx = _usable_row(report, skip_bad, verify_images, taxonomy, row["dx"], image, where)
        if dx is None:
            continue
        attributes = {
            "sex": (row.get("sex") or "").strip().lower(),
            "age": (row.get("age_approx") or "").strip(),
            "localization": (row.get("anatom_site_general") or "").strip().lower(),
        }
        lesion = (row.get("lesion_id") or "").strip() or image_id
        records.append(Record(image, image_id, dx, lesion, "", "isic-archive", "", attributes))
    report.loaded = len(records)
    return records, report


def load_manifest(
    csv_path: str | Path,
    skip_bad: bool = False,
    verify_images: bool = False,
    taxonomy: Taxonomy | None = None,
) -> tuple[list[Record], LoadReport]:
    """Load a generic manifest CSV with columns ``image,dx`` (optional ``lesion_id,patient_id``).

    Image paths are relative to the CSV's folder. Without ``lesion_id`` each image is its own
    lesion (so splits cannot know about repeated images of one lesion: add the column if any).
    """
    csv_path = Path(csv_path).resolve()
    taxonomy = taxonomy or load_taxonomy()
    rows = _read_csv(csv_path, {"image", "dx"})
    report, records = LoadReport("manifest"), []
    for line, row in enumerate(rows, start=2):
        image = (csv_path.parent / row["image"].strip()).resolve()
        where = f"{csv_path}:{line} ({row['image']})"
        dx = _usable_row(report, skip_bad, verify_images, taxonomy, row["dx"], image, where)
        if dx is None:
            continue
        image_id = row["image"].strip()
        lesion = (row.get("lesion_id") or "").strip() or image_id
        patient = (row.get("patient_id") or "").strip()
        records.append(Record(image, image_id, dx, lesion, patient, "manifest"))
    report.loaded = len(records)
    return records, report


LOADERS = {"ham10000": load_ham10000, "pad-ufes-20": load_pad_ufes20,
           "isic-archive": load_isic_archive, "manifest": load_manifest}


def detect_kind(path: Path) -> str:
    """Recognise a source layout from its files."""
    if path.is_file() and path.suffix.lower() == ".csv":
        return "manifest"
    if (path / "HAM10000_metadata.csv").is_file():
        return "ham10000"
    if (path / "metadata.csv").is_file() and (path / "images").is_dir():
        with open(path / "metadata.csv", newline="", encoding="utf-8") as stream:
            header = next(csv.reader(stream), [])
        return "isic-archive" if "image_id" in header and "img_id" not in header else "pad-ufes-20"
    raise DataSourceError(
        f"cannot tell the layout of {path}: expected HAM10000_metadata.csv, a PAD-UFES-20 or "
        "ISIC-archive metadata.csv with images/, or a manifest .csv"
    )


def load_source(
    spec: str, skip_bad: bool = False, verify_images: bool = False, data_dir: Path | None = None
) -> tuple[list[Record], LoadReport]:
    """Load a source from a spec (``kind:path`` or a path; relative to ``data_dir`` if given)."""
    kind, sep, location = spec.partition(":")
    if not sep or kind not in LOADERS:
        kind, location = "", spec
    path = Path(location).expanduser()
    if not path.is_absolute() and data_dir is not None and not path.exists():
        path = data_dir / path
    if not path.exists():
        raise DataSourceError(f"data source not found: {path}")
    kind = kind or detect_kind(path)
    return LOADERS[kind](path, skip_bad=skip_bad, verify_images=verify_images)


def fingerprint(records: list[Record]) -> str:
    """sha256 over (source, image id, dx, lesion, patient) of every record, order-independent."""
    digest = hashlib.sha256()
    for key in sorted((r.source, r.image_id, r.dx, r.lesion_id, r.patient_id) for r in records):
        digest.update("\t".join(key).encode("utf-8") + b"\n")
    return digest.hexdigest()
