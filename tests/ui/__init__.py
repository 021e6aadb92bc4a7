"""Tests of the PySide6 station UI (offscreen, real widgets, real service and model)."""
