"""The engine's data keys (encryption at rest): rotation (``skinstation engine keys rotate``)."""
