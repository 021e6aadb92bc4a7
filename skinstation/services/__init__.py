"""Typed service functions the UI, the CLI and the engine call (no Qt, no HTTP)."""
