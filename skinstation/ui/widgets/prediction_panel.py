"""The model's output as the result, history and review screens show it."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from PySide6.QtWidgets import QLabel, QVBoxLayout, QWidget

from skinstation.inference.classifier import NOT_ASSESSABLE, Prediction, guidance_key
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

    @classmethod
    def of(cls, prediction: Prediction | Mapping[str, Any]) -> PredictionView:
        """From a classifier :class:`Prediction` or ``StationService.capture_detail``'s dict."""
        if isinstance(prediction, Prediction):
            return cls(prediction.decision, bool(prediction.referral),
                       dict(prediction.group_probs), dict(prediction.class_probs),
                       prediction.model_version)
        return cls(str(prediction["decision"]), bool(prediction.get("referral")),
                   dict(prediction.get("group_probabilities") or {}),
                   dict(prediction.get("class_probabilities") or {}),
                   str(prediction.get("model_version") or ""))

    @property
    def assessable(self) -> bool:
        """False for ``not_assessable`` (no probabilities, no diagnosis are shown)."""
        return self.decision != NOT_ASSESSABLE

    @property
    def guidance_key(self) -> str:
        """Text key of the guidance: the more cautious of the decision and the referral."""
        return guidance_key(self.decision, self.referral)


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
                       self.classes_title, self.classes, self.notice):
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
        if view is None:
            self.banner.set_decision("", tr("ui.result.not_classified"))
            self.guidance.setText("")
            return
        if not view.assessable:
            self.banner.set_decision(NOT_ASSESSABLE, tr("ui.result.not_assessable"))
            self.guidance.setText(tr("guidance.not_assessable"))
            return
        referral = tr("referral.flag") if view.referral else ""
        self.banner.set_decision(view.decision, tr(f"decision.{view.decision}"), referral)
        self.guidance.setText(tr(view.guidance_key))
        groups = [g for g in GROUP_ORDER if g in view.group_probs]
        groups += [g for g in view.group_probs if g not in groups]
        self.groups.set_items([(tr(f"group.{g}"), view.group_probs[g],
                                DECISION_STYLE.get(g, ("", "#3b6ea8", ""))[1]) for g in groups])
        ranked = sorted(view.class_probs.items(), key=lambda kv: -kv[1])
        self.classes.set_items([(f"{tr(f'class.{c}')} ({c})", p) for c, p in ranked])
