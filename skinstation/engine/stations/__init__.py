"""Capture stations: one-time enrollment codes, station tokens, revocation, events."""
