"""Station ↔ engine sync client (offline-first outbox, reviews and model updates)."""
