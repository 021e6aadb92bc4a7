"""Alembic environment of the engine database (version table ``alembic_version_engine``).

:func:`skinstation.engine.database.open_engine_database` builds the configuration in code and
hands its SQLAlchemy engine over in ``config.attributes["engine"]``.
"""

from skinstation.core.sqlbase import run_alembic_environment
from skinstation.engine.database import VERSION_TABLE
from skinstation.engine.tables import Base

run_alembic_environment(Base.metadata, version_table=VERSION_TABLE)
