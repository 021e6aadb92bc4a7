"""Render a model card (Markdown) from a model file's own metadata, so figures are never typed."""

from __future__ import annotations

import math
from typing import Any

from skinstation.inference.model_file import ModelMetadata


def _f(value: Any) -> str:
    if isinstance(value, float):
        return "–" if math.isnan(value) else f"{value:.3f}"
    return str(value)


def _cancer_rate(assess: dict[str, Any]) -> str:
    """How the not-assessable threshold treats validation cancers ('' for older files)."""
    rate = assess.get("val_false_rejection_cancer")
    if rate is None:
        return ""
    return (f", with validation skin cancers held to the same rate (rejected: "
            f"{_f(float(assess.get('val_false_rejection', float('nan'))))} of all, "
            f"{_f(float(rate))} of cancers)")


def _ci(pair: list[float] | None) -> str:
    return f"[{_f(pair[0])}, {_f(pair[1])}]" if pair else ""


def _evaluation_section(name: str, m: dict[str, Any]) -> str:
    lines = [
        f"### {name}: {m['images']} images, {m['units']} lesions/patients",
        "",
        f"- Balanced accuracy (classes present): **{_f(m['balanced_accuracy'])}** "
        f"{_ci(m.get('balanced_accuracy_ci'))}; image-level accuracy {_f(m['accuracy'])} "
        "(dominated by nevi: read the balanced figure)"
        + (f"; plain argmax without the validation-fitted decision offsets "
           f"{_f(m['balanced_accuracy_argmax'])} (how well the offsets transfer)."
           if "balanced_accuracy_argmax" in m else "."),
        f"- Calibration: ECE {_f(m['ece'])} after temperature scaling "
        f"(T = {_f(m['temperature'])}; {_f(m['ece_uncalibrated'])} before).",
        f"- Skin cancer vs rest: AUC {_f(m['triage']['cancer_auc'])} on "
        f"{m['triage']['cancer_count']} cancers; the decision rule alone catches "
        f"{_f(m['triage']['rule_cancer_sensitivity'])} of cancers at specificity "
        f"{_f(m['triage']['rule_cancer_specificity'])}.",
    ]
    referral = m.get("referral")
    if referral and "threshold_only" in referral:
        shown, either = referral["not_assessable"], referral["flagged_or_not_assessable"]
        lines.append(
            f"- **Safety referral as the station shows it** (p(skin cancer) ≥ "
            f"{_f(referral['threshold'])} on an assessable image): sensitivity "
            f"**{_f(referral['sensitivity'])}** {_ci(referral['sensitivity_ci'])}, specificity "
            f"**{_f(referral['specificity'])}** {_ci(referral['specificity_ci'])}; "
            f"{_f(referral['referred_fraction'])} of images flagged. Not assessable (retake, no "
            f"flag): {_f(shown['fraction'])} of images, {_f(shown['sensitivity'])} of cancers. "
            f"Flagged or not assessable: sensitivity {_f(either['sensitivity'])} "
            f"{_ci(either['sensitivity_ci'])}, specificity {_f(either['specificity'])}. The "
            f"threshold alone would flag {_f(referral['threshold_only']['sensitivity'])} of "
            "cancers.")
    elif referral:
        lines.append(
            f"- **Safety referral** (p(skin cancer) ≥ {_f(referral['threshold'])}, threshold "
            "alone: this file was sealed before referrals were measured as the station shows "
            f"them): sensitivity **{_f(referral['sensitivity'])}** "
            f"{_ci(referral['sensitivity_ci'])}, specificity **{_f(referral['specificity'])}** "
            f"{_ci(referral['specificity_ci'])}; {_f(referral['referred_fraction'])} of images "
            "referred.")
    rule = m["decision_rule"]
    lines.append(
        f"- Decision rule coverage {_f(rule['coverage'])} (indeterminate "
        f"{_f(rule['indeterminate'])}, not assessable {_f(rule['not_assessable'])}); accuracy "
        f"on decided cases {_f(rule['accuracy_on_decided'])}.")
    lines += ["", "| class | n | sensitivity [95% CI] | specificity | AUC |",
              "|---|---|---|---|---|"]
    for code, c in m["per_class"].items():
        lines.append(f"| {code} | {c['support']} | {_f(c['sensitivity'])} "
                     f"{_ci(c['sensitivity_ci'])} | {_f(c['specificity'])} | {_f(c['auc'])} |")
    for group, rows in m.get("subgroups", {}).items():
        lines += ["", f"By {group}:", "",
                  "| value | images | cancers | referral sensitivity | referral specificity |",
                  "|---|---|---|---|---|"]
        for value, r in rows.items():
            lines.append(f"| {value} | {r['images']} | {r['cancers']} | "
                         f"{_f(r['referral_sensitivity'])} | {_f(r['referral_specificity'])} |")
    return "\n".join(lines)


# The project's minimums on the locked HAM10000 test split: (label, getter, comparison, bound).
FLOORS: tuple[tuple[str, Any, str, float], ...] = (
    ("balanced accuracy", lambda m: m["balanced_accuracy"], ">=", 0.75),
    ("melanoma sensitivity", lambda m: m["per_class"]["mel"]["sensitivity"], ">=", 0.75),
    ("ECE after temperature scaling", lambda m: m["ece"], "<=", 0.05),
    ("skin-cancer referral sensitivity (as the station shows it)",
     lambda m: m["referral"]["sensitivity"], ">=", 0.95),
    ("specificity at that referral", lambda m: m["referral"]["specificity"], ">=", 0.65),
    ("test images rejected as not assessable",
     lambda m: m["decision_rule"]["not_assessable"], "<=", 0.05),
)


def floors_section(test: dict[str, Any]) -> str:
    """A table of the test-split figures against the project's minimums, met or not."""
    rows = ["| minimum | required | measured | met |", "|---|---|---|---|"]
    for label, get, op, bound in FLOORS:
        value = float(get(test))
        met = value >= bound if op == ">=" else value <= bound
        rows.append(f"| {label} | {op} {bound:.2f} | {value:.3f} | {'yes' if met else '**no**'} |")
    return "\n".join(rows)


def _recipe(training: dict[str, Any]) -> str:
    cached = "cached trunk features, linear head, then the last blocks fine-tuned"
    full = training.get("full_epochs", 0)
    if not full:
        return cached
    whole = (f"the whole network fine-tuned for {full} epochs on freshly augmented images, "
             f"batches of {training.get('full_batch_size')}, lr {training.get('full_lr')}, "
             f"{training.get('class_weighting')} loss")
    if training.get("init_model"):
        return f"starting from `{training['init_model']}` ({cached}), {whole}"
    return f"{cached}, then {whole}"


def _times(training: dict[str, Any]) -> str:
    def minutes(seconds: dict[str, float]) -> str:
        return ", ".join(f"{k} {v / 60:.1f} min" for k, v in seconds.items())

    text = minutes(training.get("seconds", {}))
    parent = training.get("parent_training", {})
    if parent.get("seconds"):
        text += f" (and its starting model: {minutes(parent['seconds'])})"
    return text


def _also(training: dict[str, Any]) -> str:
    also = training.get("also", [])
    if not also:
        return ""
    names = ", ".join(f"`{spec}` (split `{split}`)" for spec, split in also)
    return (f", and on other clinics' images: {names}, whose training parts join training, "
            "whose validation parts join the validation pool (epoch selection and every "
            "operating point) and whose test parts are reported as `other-clinics` (ISIC "
            "archive images: CC BY-NC, non-commercial)")


def _fingerprint(metadata: ModelMetadata) -> str:
    """The training data fingerprint (it names every record trained on), if the file has one."""
    if not metadata.data_fingerprint:
        return "no training data fingerprint recorded"
    cases = int(metadata.training.get("extra_records", 0) or 0)
    seen = (f", including {cases} synced case(s) reviewed on the engine (a case erased later "
            "stays recorded as seen by this model)" if cases else "")
    return f"training data fingerprint `{metadata.data_fingerprint}`{seen}"


def _where(training: dict[str, Any]) -> str:
    where = f"; trained on {training.get('hardware', 'a 2-core CPU machine')}"
    if training.get("run"):
        where += f", run `{training['run']}` (its run folder holds the log and the curve)"
    return where


def render_model_card(metadata: ModelMetadata, size_bytes: int, rerun: str,
                      notes: str = "") -> str:
    """The model card for ``metadata`` (figures straight from the file, ``notes`` appended)."""
    training = metadata.training
    referral, assess = metadata.referral, metadata.assessability
    evaluations = "\n\n".join(_evaluation_section(name, m)
                              for name, m in sorted(metadata.metrics.items(),
                                                    key=lambda item: item[0] != "test"))
    return f"""# Model card: {metadata.model_version}

**Not a diagnosis.** This model supports triage by clinic staff; every result must be read by a
clinician. Suspected skin cancer, safety referrals and indeterminate results go to a
dermatologist.

## What it is
- Architecture: {metadata.architecture} (ImageNet weights, transfer learning:
  {_recipe(training)}), {len(metadata.classes)} classes
  ({", ".join(metadata.classes)}), softmax outputs with temperature {_f(metadata.temperature)}.
- Triage groups: skin cancer = mel + bcc; other skin disease = akiec (pre-cancerous) + bkl;
  benign = nv + df + vasc. The decision rule decides a group only when its probability
  exceeds the sum of the other two; otherwise the case is indeterminate.
- Safety referral threshold: p(skin cancer) ≥ {_f(referral.get('threshold', float('nan')))},
  fitted on the validation split to reach sensitivity {_f(referral.get('target_sensitivity',
  float('nan')))} (reached {_f(referral.get('sensitivity', float('nan')))} at specificity
  {_f(referral.get('specificity', float('nan')))} on validation).
- Not assessable: {assess.get('method', 'none')} score on the network's features, threshold
  {_f(assess.get('threshold') or float('nan'))} fitted at a
  {_f(assess.get('false_rejection_target', float('nan')))} false-rejection rate on
  validation{_cancer_rate(assess)}.
- Preprocessing (stored in the file): {metadata.preprocess}.
- File: {size_bytes / 1e6:.1f} MB, content sha256 `{metadata.content_sha256}`, created
  {metadata.created_at}; {_fingerprint(metadata)}.

## Data and licence
Trained on HAM10000 (ISIC 2018 Task 3 training set, 10,015 dermoscopic images, 7,470 lesions),
split by lesion into train/validation/test (`{training.get('split', '')}`, made once and reused
by every run; its seed is in the file's JSON sidecar){_also(training)};
{training.get('train_images', '')} training images, training seed
{training.get('seed', '')}{_where(training)}. HAM10000 is
licensed **CC BY-NC 4.0**: this model inherits the **non-commercial** restriction.
PAD-UFES-20 (CC BY 4.0, smartphone photos) is used only for evaluation (never trained on),
to measure the shift from dermoscopy to clinic cameras.

## Measured performance
All figures are measured by `skinstation evaluate` / the training pipeline and copied from the
model file's metadata; 95% CIs are bootstrap intervals resampling lesions/patients.

{evaluations}

### Against the project's minimums (locked HAM10000 test split)
{floors_section(metadata.metrics["test"]) if "test" in metadata.metrics else "not evaluated"}

## Intended use and limits
- Intended: decision support for triage of single skin lesions imaged with a dermatoscope at
  a clinic station, by trained staff, with dermatologist review of flagged cases.
- Not intended: diagnosis, use without clinician oversight, screening of lesions the model
  has not seen (e.g. mucosal, nail, ulcerated), or children without specialist review.
- Known limits: trained on dermoscopic images of mostly fair-skinned European and Australian
  patients; performance on clinic photos (PAD-UFES-20) is lower, see above; rare classes
  (df, vasc) have wide confidence intervals; SCC has no class of its own (nearest: akiec).

## Reproduce
```sh
{rerun}
```
Training time on 2 CPU cores: {_times(training)}.
""" + (f"\n## Notes\n{notes.strip()}\n" if notes.strip() else "")
