"""The fine-class → triage-group taxonomy, loaded from ``resources/taxonomy.json``."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from skinstation.core.triage import BENIGN as BENIGN
from skinstation.core.triage import OTHER_DISEASE as OTHER_DISEASE
from skinstation.core.triage import SKIN_CANCER as SKIN_CANCER
from skinstation.resources import TAXONOMY_PATH

FINE_CLASSES: tuple[str, ...] = ("akiec", "bcc", "bkl", "df", "mel", "nv", "vasc")


@dataclass(frozen=True)
class Taxonomy:
    """Fine classes, their triage groups and the external-dataset maps.

    Attributes:
        classes: Fine class codes in model-output order.
        class_names: Human-readable name of each fine class.
        groups: Group codes in display order.
        group_names: Human-readable name of each group.
        group_of: Fine class code → group code.
        precancerous: Fine classes marked pre-cancerous.
        pad_ufes_20_map: PAD-UFES-20 ``diagnostic`` → {"dx": code, optional "group"}.
    """

    classes: tuple[str, ...]
    class_names: Mapping[str, str]
    groups: tuple[str, ...]
    group_names: Mapping[str, str]
    group_of: Mapping[str, str]
    precancerous: frozenset[str]
    pad_ufes_20_map: Mapping[str, Mapping[str, str]]

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Taxonomy:
        """Build and validate a taxonomy from its JSON form.

        Raises:
            ValueError: If a class names an unknown group or a group has no class.
        """
        groups = tuple(g["code"] for g in data["groups"])
        classes = tuple(c["code"] for c in data["classes"])
        group_of = {c["code"]: c["group"] for c in data["classes"]}
        for code, group in group_of.items():
            if group not in groups:
                raise ValueError(f"class {code!r} maps to unknown group {group!r}")
        for group in groups:
            if group not in group_of.values():
                raise ValueError(f"group {group!r} has no class")
        pad_map = {k: dict(v) for k, v in data.get("pad_ufes_20_map", {}).items() if k[0] != "_"}
        return cls(
            classes=classes,
            class_names={c["code"]: c["name"] for c in data["classes"]},
            groups=groups,
            group_names={g["code"]: g["name"] for g in data["groups"]},
            group_of=group_of,
            precancerous=frozenset(c["code"] for c in data["classes"] if c.get("precancerous")),
            pad_ufes_20_map=pad_map,
        )

    def to_dict(self) -> dict[str, Any]:
        """Return the JSON form (as stored in model files)."""
        return {
            "classes": [
                {
                    "code": c,
                    "name": self.class_names[c],
                    "group": self.group_of[c],
                    "precancerous": c in self.precancerous,
                }
                for c in self.classes
            ],
            "groups": [{"code": g, "name": self.group_names[g]} for g in self.groups],
            "pad_ufes_20_map": {k: dict(v) for k, v in self.pad_ufes_20_map.items()},
        }

    def group_matrix(self) -> npt.NDArray[np.float64]:
        """Return the (n_classes, n_groups) 0/1 matrix that sums class into group probabilities."""
        matrix = np.zeros((len(self.classes), len(self.groups)), dtype=np.float64)
        for i, code in enumerate(self.classes):
            matrix[i, self.groups.index(self.group_of[code])] = 1.0
        return matrix

    def group_probabilities(self, class_probs: Sequence[float] | np.ndarray
                            ) -> npt.NDArray[np.float64]:
        """Sum fine-class probabilities into group probabilities.

        Args:
            class_probs: Shape (n_classes,) or (n, n_classes), in ``classes`` order.

        Returns:
            Shape (n_groups,) or (n, n_groups), in ``groups`` order.
        """
        probs = np.asarray(class_probs, dtype=np.float64)
        if probs.shape[-1] != len(self.classes):
            raise ValueError(f"expected {len(self.classes)} class probabilities, got {probs.shape}")
        return probs @ self.group_matrix()

    def group_index(self, dx: str) -> int:
        """Return the index of the group that fine class ``dx`` belongs to."""
        return self.groups.index(self.group_of[dx])


def load_taxonomy(path: Path | None = None) -> Taxonomy:
    """Load a taxonomy file (the bundled one by default)."""
    if path is None:
        return _bundled()
    return Taxonomy.from_dict(json.loads(Path(path).read_text(encoding="utf-8")))


@lru_cache(maxsize=1)
def _bundled() -> Taxonomy:
    return Taxonomy.from_dict(json.loads(TAXONOMY_PATH.read_text(encoding="utf-8")))
