"""Captures arriving from stations and providers: checked, stored once, image verified."""
