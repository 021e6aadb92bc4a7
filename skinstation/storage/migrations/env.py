"""Alembic environment of the station database (see :mod:`skinstation.core.sqlbase`).

There is no ``alembic.ini``: :func:`skinstation.storage.database.alembic_config` builds the
configuration in code and puts the engine in ``config.attributes["engine"]``. For the
``alembic`` command line, set ``sqlalchemy.url`` with ``-x url=...`` instead.
"""

from skinstation.core.sqlbase import run_alembic_environment
from skinstation.storage.models import Base

run_alembic_environment(Base.metadata)
