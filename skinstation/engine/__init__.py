"""The central engine: HTTP API, expert review, retraining worker, model distribution."""
