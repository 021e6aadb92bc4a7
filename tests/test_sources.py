import csv
import shutil
from pathlib import Path

import pytest

from skinstation.training.sources import (
    DataSourceError,
    detect_kind,
    fingerprint,
    load_ham10000,
    load_manifest,
    load_pad_ufes20,
    load_source,
)


def test_ham10000_full_layout(ham_dir):
    records, report = load_ham10000(ham_dir)
    assert report.loaded == 10015 and not report.skipped
    counts = {}
    for r in records:
        counts[r.dx] = counts.get(r.dx, 0) + 1
    assert counts == {"nv": 6705, "mel": 1113, "bkl": 1099, "bcc": 514, "akiec": 327,
                      "vasc": 142, "df": 115}
    assert len({r.lesion_id for r in records}) == 7470
    first = next(r for r in records if r.image_id == "ISIC_0027419")
    assert (first.dx, first.lesion_id, first.attributes["sex"]) == ("bkl", "HAM_0000118", "male")
    assert first.split_key == "HAM_0000118"


def test_pad_ufes20_layout_maps_codes(pad_dir):
    records, report = load_pad_ufes20(pad_dir)
    assert report.loaded == 686
    assert report.skipped == {"not in subset": 2298 - 686}
    by_diag = {}
    for r in records:
        by_diag.setdefault(r.attributes["diagnostic"], set()).add((r.dx, r.true_group))
    assert by_diag["SCC"] == {("akiec", "skin_cancer")}
    assert by_diag["SEK"] == {("bkl", "")}
    assert by_diag["ACK"] == {("akiec", "")}
    assert all(r.split_key == r.patient_id and r.patient_id.startswith("PAT_") for r in records)


def _ham_copy(tmp_path: Path, ham_dir: Path, rows: list[list[str]]) -> Path:
    root = tmp_path / "ham"
    root.mkdir()
    (root / "images").symlink_to(ham_dir / "images")
    with open(root / "HAM10000_metadata.csv", "w", newline="") as stream:
        writer = csv.writer(stream)
        writer.writerow(["lesion_id", "image_id", "dx", "dx_type", "age", "sex", "localization"])
        writer.writerows(rows)
    return root


def test_ham_bad_rows_raise_naming_the_file_or_are_counted(tmp_path, ham_dir):
    rows = [
        ["HAM_0000118", "ISIC_0027419", "bkl", "histo", "80", "male", "scalp"],
        ["HAM_X", "ISIC_9999999", "nv", "histo", "50", "male", "back"],
        ["HAM_Y", "ISIC_0025030", "scc", "histo", "50", "male", "back"],
    ]
    root = _ham_copy(tmp_path, ham_dir, rows)
    with pytest.raises(DataSourceError, match=r"missing image: .*ISIC_9999999\.jpg"):
        load_ham10000(root)
    records, report = load_ham10000(root, skip_bad=True)
    assert [r.image_id for r in records] == ["ISIC_0027419"]
    assert report.skipped == {"missing image": 1, "unknown diagnosis code 'scc'": 1}
    assert "1 missing image" in report.summary()


def test_manifest_layout_and_bad_rows(tmp_path, ham_dir):
    images = tmp_path / "imgs"
    images.mkdir()
    shutil.copy(ham_dir / "images" / "ISIC_0027419.jpg", images / "a.jpg")
    (images / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    manifest = tmp_path / "cases.csv"
    manifest.write_text("image,dx\nimgs/a.jpg,bkl\nimgs/broken.jpg,nv\nimgs/none.jpg,mel\n"
                        "imgs/a.jpg,XYZ\n")
    with pytest.raises(DataSourceError, match=r"unreadable image: .*broken\.jpg"):
        load_manifest(manifest, verify_images=True)
    with pytest.raises(DataSourceError, match=r"missing image: .*none\.jpg"):
        load_manifest(manifest)
    records, report = load_manifest(manifest, skip_bad=True, verify_images=True)
    assert [(r.image_id, r.dx, r.lesion_id) for r in records] == [("imgs/a.jpg", "bkl",
                                                                    "imgs/a.jpg")]
    assert report.skipped == {"unreadable image": 1, "missing image": 1,
                              "unknown diagnosis code 'XYZ'": 1}


def test_manifest_missing_columns(tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text("path,label\nx.jpg,nv\n")
    with pytest.raises(DataSourceError, match="lacks column"):
        load_manifest(bad)


def test_source_specs_and_detection(data_dir, tmp_path):
    assert detect_kind(data_dir / "ham10000") == "ham10000"
    assert detect_kind(data_dir / "pad-ufes-20") == "pad-ufes-20"
    assert detect_kind(data_dir / "isic-archive") == "isic-archive"
    records, _ = load_source("pad-ufes-20", data_dir=data_dir)
    assert len(records) == 686
    with pytest.raises(DataSourceError, match="cannot tell the layout"):
        load_source(str(tmp_path))
    with pytest.raises(DataSourceError, match="data source not found"):
        load_source("ham10000:/nonexistent/ham")


def test_fingerprint_is_order_independent_and_label_sensitive(pad_dir):
    records, _ = load_pad_ufes20(pad_dir)
    assert fingerprint(records) == fingerprint(list(reversed(records)))
    import dataclasses
    changed = [dataclasses.replace(records[0], dx="mel"), *records[1:]]
    assert fingerprint(changed) != fingerprint(records)


def test_isic_archive_bad_rows_raise_naming_the_file_or_are_counted(tmp_path, data_dir):
    source = data_dir / "isic-archive"
    (tmp_path / "images").mkdir()
    with open(source / "metadata.csv", newline="") as stream:
        rows = list(csv.DictReader(stream))[:3]
    for row in rows[:2]:
        shutil.copy(source / "images" / f"{row['image_id']}.jpg", tmp_path / "images")
    rows[1]["dx"] = "scc"
    with open(tmp_path / "metadata.csv", "w", newline="") as stream:
        writer = csv.DictWriter(stream, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    with pytest.raises(DataSourceError, match=r"unknown diagnosis code 'scc': .*metadata.csv:3"):
        load_source(f"isic-archive:{tmp_path}")
    records, report = load_source(f"isic-archive:{tmp_path}", skip_bad=True)
    assert [r.image_id for r in records] == [rows[0]["image_id"]]
    assert report.skipped == {"unknown diagnosis code 'scc'": 1, "missing image": 1}
