"""The model's output as the result, history and review screens show it.

The words, colour and shape come from :func:`~skinstation.services.result_text.word_prediction`
(a referral or a notable skin-cancer class is never shown as a green all-clear), every
percentage from :func:`~skinstation.services.result_text.percent`, and the referral threshold
is marked on the skin-cancer bar.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from PySide6.QtWidgets import QLabel, QVBoxLayout, QWidget

from skinstation.core.triage import SKIN_CANCER
from skinstation.inference.caution import needs_caution
from skinstation.inference.classifier import NOT_ASSESSABLE, Prediction, guidance_key
from skinstation.inference.taxonomy import load_taxonomy
from skinstation.services.result_text import percent, word_prediction
from skinstation.ui.widgets.decision import DECISION_STYLE, DecisionBanner, ProbabilityBars

GROUP_ORDER = ("skin_cancer", "other_disease", "benign")


@dataclass(frozen=True)
class PredictionView:
    """What is shown of a prediction, from a live :class:`Prediction` or a stored row."""

    decision: str
    referral: bool
    group_probs: dict[str, float] = field(default_factory=dict)
    class_probs: dict[str, float] = field(default_factory=dict)
    model_version: str = ""
    referral_threshold: float | None = None

    @classmethod
    def of(cls, prediction: Prediction | Mapping[str, Any]) -> PredictionView:
        """From a classifier :class:`Prediction` or ``StationService.capture_detail``'s dict."""
        if isinstance(prediction, Prediction):
            return cls(prediction.decision, bool(prediction.referral),
                       dict(prediction.group_probs), dict(prediction.class_probs),
                       prediction.model_version, prediction.referral_threshold)
        threshold = prediction.get("referral_threshold")
        return cls(str(prediction["decision"]), bool(prediction.get("referral")),
                   dict(prediction.get("group_probabilities") or {}),
                   dict(prediction.get("class_probabilities") or {}),
                   str(prediction.get("model_version") or ""),
                   None if threshold is None else float(threshold))

    @property
    def assessable(self) -> bool:
        """False for ``not_assessable`` (no probabilities, no diagnosis are shown)."""
        return self.decision != NOT_ASSESSABLE

    @property
    def guidance_key(self) -> str:
        """Text key of the guidance: the most cautious of decision, referral and caution."""
        caution = needs_caution(self.decision, self.referral, self.class_probs,
                                self.group_probs, load_taxonomy())
        return guidance_key(self.decision, self.referral, caution)


class PredictionPanel(QWidget):
    """Decision banner, referral flag, group and class bars, guidance and the notice.

    Args:
        tr: Translation function (``key, **values -> text``).
        object_prefix: Prefix of the child widgets' object names.
        parent: Parent widget.
    """

    def __init__(self, tr: Callable[..., str], object_prefix: str = "result",
                 parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.tr_ = tr
        self.view: PredictionView | None = None
        self.banner = DecisionBanner(self)
        self.groups_title = QLabel(self)
        self.groups_title.setProperty("class", "subheading")
        self.groups = ProbabilityBars(f"{object_prefix}GroupBars", parent=self)
        self.threshold_note = QLabel(self)
        self.threshold_note.setObjectName(f"{object_prefix}ThresholdNote")
        self.threshold_note.setWordWrap(True)
        self.classes_title = QLabel(self)
        self.classes_title.setProperty("class", "subheading")
        self.classes = ProbabilityBars(f"{object_prefix}ClassBars", "#5b6b7f", self)
        self.guidance = QLabel(self)
        self.guidance.setObjectName(f"{object_prefix}Guidance")
        self.guidance.setWordWrap(True)
        self.notice = QLabel(self)
        self.notice.setObjectName(f"{object_prefix}Notice")
        self.notice.setProperty("class", "notice")
        self.notice.setWordWrap(True)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        for widget in (self.banner, self.guidance, self.groups_title, self.groups,
                       self.threshold_note, self.classes_title, self.classes, self.notice):
            layout.addWidget(widget)
        self.clear()

    def show_prediction(self, view: PredictionView | None) -> None:
        """Show ``view`` (None: nothing classified)."""
        self.view = view
        self.retranslate()

    def clear(self) -> None:
        """Show nothing."""
        self.show_prediction(None)

    def retranslate(self) -> None:
        """Redraw every text in the current language."""
        tr, view = self.tr_, self.view
        self.notice.setText(tr("notice"))
        self.groups_title.setText(tr("ui.result.groups"))
        self.classes_title.setText(tr("ui.result.classes"))
        has_bars = view is not None and view.assessable and bool(view.group_probs)
        for widget in (self.groups_title, self.groups, self.classes_title, self.classes):
            widget.setVisible(has_bars)
        self.threshold_note.setVisible(False)
        if view is None:
            self.banner.set_decision("", tr("ui.result.not_classified"))
            self.guidance.setText("")
            return
        wording = word_prediction(tr, view.decision, view.referral, view.group_probs,
                                  view.class_probs, view.referral_threshold)
        self.banner.set_decision(view.decision, wording.title, wording.referral,
                                 wording.detail, style=wording.style)
        self.guidance.setText(wording.guidance)
        if not view.assessable:
            return
        groups = [g for g in GROUP_ORDER if g in view.group_probs]
        groups += [g for g in view.group_probs if g not in groups]
        threshold = view.referral_threshold
        markers = ({tr(f"group.{SKIN_CANCER}"): threshold}
                   if threshold is not None and SKIN_CANCER in view.group_probs else {})
        self.groups.set_items([(tr(f"group.{g}"), view.group_probs[g],
                                DECISION_STYLE.get(g, ("", "#3b6ea8", ""))[1]) for g in groups],
                              markers)
        if markers and threshold is not None:
            self.threshold_note.setText(tr("ui.result.threshold_mark",
                                           threshold=percent(threshold)))
            self.threshold_note.setVisible(has_bars)
        ranked = sorted(view.class_probs.items(), key=lambda kv: -kv[1])
        self.classes.set_items([(f"{tr(f'class.{c}')} ({c})", p) for c, p in ranked])
