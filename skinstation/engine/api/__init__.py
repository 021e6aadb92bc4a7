"""The engine HTTP API (FastAPI): thin routes over the engine services."""
