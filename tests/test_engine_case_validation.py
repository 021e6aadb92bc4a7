"""Reviewed cases held out for validation: whole patients, the same ones every job."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from skinstation.engine.retraining.cases import MIN_PATIENTS_TO_HOLD_OUT, hold_out_patients
from skinstation.engine.retraining.ddp import read_spec, write_spec
from skinstation.settings import Settings
from skinstation.training.pipeline import BuildRequest
from skinstation.training.sources import Record


def _cases(patients: int, per_patient: int = 3) -> list[Record]:
    return [Record(Path(f"/cases/{p}-{i}.png"), f"engine-{p}-{i}", "bcc", f"engine-{p}-{i}",
                   f"engine-station1:PAT-{p:03d}", "engine")
            for p in range(patients) for i in range(per_patient)]


def test_a_share_of_whole_patients_is_held_out_and_never_trained_on():
    cases = _cases(40)
    train, validation = hold_out_patients(cases, 0.2)
    assert len({r.patient_id for r in validation}) == 8  # round(0.2 x 40) patients
    assert len(validation) == 24 and len(train) == 96
    assert not {r.patient_id for r in train} & {r.patient_id for r in validation}
    assert sorted(train + validation, key=cases.index) == cases  # nothing lost, order kept
    # the same patients every job, and in any input order
    _, again_validation = hold_out_patients(list(reversed(cases)), 0.2)
    assert {r.patient_id for r in again_validation} == {r.patient_id for r in validation}
    # a job with more patients keeps most of the earlier ones held out (hash order)
    _, later = hold_out_patients(_cases(50), 0.2)
    assert len({r.patient_id for r in later} & {r.patient_id for r in validation}) >= 7


def test_few_patients_or_share_zero_train_on_every_case():
    few = _cases(MIN_PATIENTS_TO_HOLD_OUT - 1)
    assert hold_out_patients(few, 0.2) == (few, [])
    many = _cases(30)
    assert hold_out_patients(many, 0.0) == (many, [])
    with pytest.raises(ValueError, match=r"case validation share must be in \[0, 1\)"):
        hold_out_patients(many, 1.0)


@pytest.mark.parametrize("share", [1.0, -0.1, 2])
def test_a_share_outside_0_to_1_is_refused_when_the_settings_are_read(tmp_path: Path, share):
    config = tmp_path / "settings.toml"
    config.write_text(f"[engine]\ncase_validation_share = {share}\n")
    with pytest.raises(ValueError, match=r"engine\.case_validation_share must be in \[0, 1\)"):
        Settings.load(env={}, config_file=config)
    assert Settings.load(env={}).engine.case_validation_share == 0.2


def test_the_ddp_spec_carries_the_held_out_cases(tmp_path: Path):
    cases = _cases(12, per_patient=1)
    request = BuildRequest(source="ham10000:/data/ham10000", split_path=tmp_path / "split.csv",
                           output=tmp_path / "out.safetensors", extra_records=cases[:9],
                           validation_records=cases[9:])
    spec = json.loads(write_spec(request, tmp_path / "spec.json").read_text())
    again = read_spec(spec)
    assert list(again.extra_records) == cases[:9]
    assert list(again.validation_records) == cases[9:]
