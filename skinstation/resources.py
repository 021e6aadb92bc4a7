"""Locations of the project's bundled resources (taxonomy, texts, default model, styles)."""

from __future__ import annotations

from pathlib import Path

RESOURCES_DIR = Path(__file__).resolve().parent.parent / "resources"
TAXONOMY_PATH = RESOURCES_DIR / "taxonomy.json"
I18N_DIR = RESOURCES_DIR / "i18n"
MODELS_DIR = RESOURCES_DIR / "models"
DEFAULT_MODEL_PATH = MODELS_DIR / "skinstation-default.safetensors"
