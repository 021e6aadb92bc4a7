"""Alembic migration environment of the station database (run via ``init_database``)."""
