"""Evaluation reports: ``metrics.json`` plus a self-contained ``report.html`` with PNG figures.

Figures: the confusion matrix (row-normalised, counts written in), the reliability diagram
before/after temperature scaling, and the skin-cancer ROC curve with the referral operating
point marked.
"""

from __future__ import annotations

import base64
import html
import json
import math
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np


def _fmt(value: Any, digits: int = 3) -> str:
    if isinstance(value, float):
        return "–" if math.isnan(value) else f"{value:.{digits}f}"
    return html.escape(str(value))


def _ci(pair: list[float]) -> str:
    return f"[{_fmt(pair[0])}, {_fmt(pair[1])}]"


def plot_confusion(matrix: list[list[int]], labels: list[str], path: Path) -> Path:
    """Row-normalised confusion matrix with counts."""
    counts = np.asarray(matrix, float)
    normalised = counts / np.maximum(counts.sum(1, keepdims=True), 1)
    figure, axes = plt.subplots(figsize=(6, 5), dpi=100)
    image = axes.imshow(normalised, cmap="Blues", vmin=0, vmax=1)
    axes.set_xticks(range(len(labels)), labels, rotation=45)
    axes.set_yticks(range(len(labels)), labels)
    axes.set_xlabel("predicted")
    axes.set_ylabel("true")
    for (i, j), value in np.ndenumerate(counts):
        colour = "white" if normalised[i, j] > 0.5 else "black"
        axes.text(j, i, f"{int(value)}", ha="center", va="center", color=colour, fontsize=8)
    figure.colorbar(image, ax=axes, label="fraction of true class")
    figure.tight_layout()
    figure.savefig(path)
    plt.close(figure)
    return path


def plot_reliability(bins: list[dict[str, float]], ece: float, path: Path) -> Path:
    """Reliability diagram: accuracy vs confidence per bin."""
    figure, axes = plt.subplots(figsize=(5, 5), dpi=100)
    centres = [(b["low"] + b["high"]) / 2 for b in bins]
    accuracy = [b["accuracy"] for b in bins]
    axes.bar(centres, accuracy, width=1 / len(bins), edgecolor="black", alpha=0.7,
             label="accuracy")
    axes.plot([0, 1], [0, 1], "k--", label="perfect calibration")
    axes.set_xlabel("confidence (top class)")
    axes.set_ylabel("accuracy")
    axes.set_title(f"Reliability after temperature scaling (ECE {ece:.3f})")
    axes.legend(loc="upper left")
    figure.tight_layout()
    figure.savefig(path)
    plt.close(figure)
    return path


def plot_roc(roc: dict[str, list[float]], auc: float, operating: dict[str, float] | None,
             path: Path) -> Path:
    """Skin-cancer ROC with the referral operating point."""
    figure, axes = plt.subplots(figsize=(5, 5), dpi=100)
    axes.plot(roc["fpr"], roc["tpr"], label=f"skin cancer vs rest (AUC {auc:.3f})")
    axes.plot([0, 1], [0, 1], "k:", linewidth=0.8)
    if operating:
        axes.plot(1 - operating["specificity"], operating["sensitivity"], "ro",
                  label=f"referral threshold {operating['threshold']:.3f}")
    axes.set_xlabel("1 - specificity")
    axes.set_ylabel("sensitivity")
    axes.legend(loc="lower right")
    figure.tight_layout()
    figure.savefig(path)
    plt.close(figure)
    return path


def _img(path: Path) -> str:
    data = base64.b64encode(path.read_bytes()).decode("ascii")
    return f'<img alt="{html.escape(path.stem)}" src="data:image/png;base64,{data}">'


def write_report(metrics: dict[str, Any], classes: list[str], out_dir: str | Path,
                 title: str) -> Path:
    """Write ``metrics.json``, the PNG figures and ``report.html`` into ``out_dir``."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n", encoding="utf-8")
    figures = [
        plot_confusion(metrics["confusion_matrix"], classes, out / "confusion_matrix.png"),
        plot_reliability(metrics["reliability"], metrics["ece"], out / "reliability.png"),
        plot_roc(metrics["triage"]["roc"], metrics["triage"]["cancer_auc"],
                 metrics.get("referral"), out / "roc_skin_cancer.png"),
    ]
    rows = "".join(
        f"<tr><td>{c}</td><td>{m['support']}</td><td>{_fmt(m['sensitivity'])} "
        f"{_ci(m['sensitivity_ci'])}</td><td>{_fmt(m['specificity'])}</td>"
        f"<td>{_fmt(m['auc'])}</td></tr>"
        for c, m in metrics["per_class"].items()
    )
    referral = metrics.get("referral")
    referral_html = (
        f"<p>Referral threshold p(skin cancer) ≥ {_fmt(referral['threshold'])}: sensitivity "
        f"{_fmt(referral['sensitivity'])} {_ci(referral['sensitivity_ci'])}, specificity "
        f"{_fmt(referral['specificity'])} {_ci(referral['specificity_ci'])}, "
        f"{_fmt(referral['referred_fraction'])} of images referred, as the station shows it "
        "(a not-assessable image shows no flag). Not assessable: "
        f"{_fmt(referral['not_assessable']['fraction'])} of images, "
        f"{_fmt(referral['not_assessable']['sensitivity'])} of cancers. Flagged or not "
        f"assessable: sensitivity {_fmt(referral['flagged_or_not_assessable']['sensitivity'])} "
        f"{_ci(referral['flagged_or_not_assessable']['sensitivity_ci'])}, specificity "
        f"{_fmt(referral['flagged_or_not_assessable']['specificity'])}. Threshold alone "
        f"(ignoring assessability): sensitivity "
        f"{_fmt(referral['threshold_only']['sensitivity'])}.</p>"
        if referral and "not_assessable" in referral else "")
    subgroups = ""
    for name, rows_by_value in metrics.get("subgroups", {}).items():
        body = "".join(
            f"<tr><td>{html.escape(v)}</td><td>{r['images']}</td><td>{r['cancers']}</td>"
            f"<td>{_fmt(r['referral_sensitivity'])}</td><td>{_fmt(r['referral_specificity'])}"
            f"</td><td>{_fmt(r['balanced_accuracy'])}</td></tr>"
            for v, r in rows_by_value.items())
        subgroups += (f"<h3>By {html.escape(name)}</h3><table><tr><th>{html.escape(name)}</th>"
                      "<th>images</th><th>cancers</th><th>referral sensitivity</th>"
                      f"<th>referral specificity</th><th>balanced accuracy</th></tr>{body}</table>")
    rule, triage = metrics["decision_rule"], metrics["triage"]
    page = f"""<!doctype html><html lang="en"><meta charset="utf-8">
<title>{html.escape(title)}</title>
<style>body{{font-family:sans-serif;max-width:60em;margin:2em auto}}
table{{border-collapse:collapse}}td,th{{border:1px solid #999;padding:2px 8px}}</style>
<h1>{html.escape(title)}</h1>
<p><strong>Not a diagnosis.</strong> Figures on {metrics['images']} images of
{metrics['units']} lesions/patients; 95% CIs resample lesions/patients.</p>
<h2>Fine classes</h2>
<p>Balanced accuracy {_fmt(metrics['balanced_accuracy'])}
{_ci(metrics['balanced_accuracy_ci'])}; image-level accuracy {_fmt(metrics['accuracy'])}
(dominated by the majority class; read the balanced figure).</p>
<table><tr><th>class</th><th>n</th><th>sensitivity [95% CI]</th><th>specificity</th>
<th>AUC (one vs rest)</th></tr>{rows}</table>
<h2>Calibration</h2><p>Temperature {_fmt(metrics['temperature'])}: ECE
{_fmt(metrics['ece'])} (uncalibrated {_fmt(metrics['ece_uncalibrated'])}).</p>
<h2>Triage</h2><p>Skin-cancer AUC {_fmt(triage['cancer_auc'])} on {triage['cancer_count']}
cancers. Decision rule alone: cancer sensitivity {_fmt(triage['rule_cancer_sensitivity'])},
specificity {_fmt(triage['rule_cancer_specificity'])}; coverage {_fmt(rule['coverage'])}
(indeterminate {_fmt(rule['indeterminate'])}, not assessable {_fmt(rule['not_assessable'])}),
accuracy on decided cases {_fmt(rule['accuracy_on_decided'])}.</p>{referral_html}
{subgroups}
<h2>Figures</h2>{''.join(_img(f) for f in figures)}
</html>
"""
    report = out / "report.html"
    report.write_text(page, encoding="utf-8")
    return report
