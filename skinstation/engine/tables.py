"""Every table of the engine database: importing this module completes ``Base.metadata``.

Each domain keeps its own tables in ``<domain>/models.py``; migrations, the schema comparison
and anything that needs the whole schema import this module.
"""

from skinstation.engine.accounts import models as accounts_models
from skinstation.engine.audit import models as audit_models
from skinstation.engine.base import APPEND_ONLY_TABLES, Base
from skinstation.engine.ingest import models as ingest_models
from skinstation.engine.models import models as model_registry_models
from skinstation.engine.patients import models as patients_models
from skinstation.engine.providers import models as providers_models
from skinstation.engine.retraining import models as retraining_models
from skinstation.engine.review import models as review_models
from skinstation.engine.stations import models as stations_models

DOMAIN_TABLE_MODULES = (
    accounts_models, audit_models, ingest_models, model_registry_models, patients_models,
    providers_models, retraining_models, review_models, stations_models,
)

__all__ = ["APPEND_ONLY_TABLES", "DOMAIN_TABLE_MODULES", "Base"]
