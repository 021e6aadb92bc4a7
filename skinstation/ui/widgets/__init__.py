"""Reusable widgets of the station UI."""
