"""Alembic environment of the station database (see :mod:`skinstation.storage.sqlbase`).

There is no ``alembic.ini``: :func:`skinstation.storage.database.alembic_config` builds the
configuration in code and puts the engine in ``config.attributes["engine"]``. For the
``alembic`` command line, set ``sqlalchemy.url`` with ``-x url=...`` instead.
"""

from skinstation.storage.models import Base
from skinstation.storage.sqlbase import run_alembic_environment

run_alembic_environment(Base.metadata)
