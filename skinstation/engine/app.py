"""The engine's FastAPI application (versioned under ``/api/v1``; OpenAPI at ``/api/v1/docs``).

Stateless: every request reads what it needs from the database and the storage folder, so any
number of processes or machines can serve it behind a load balancer. Served by uvicorn
(``skinstation engine serve``); ``create_app`` is the factory it imports in each worker.
"""

from __future__ import annotations

import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from sqlalchemy import text

from skinstation import __version__
from skinstation.engine.accounts import routes as account_routes
from skinstation.engine.accounts.throttle import LoginGuard
from skinstation.engine.audit import routes as audit_routes
from skinstation.engine.database import open_engine_database
from skinstation.engine.deps import ERROR_HANDLERS, BodyLimitMiddleware, Db
from skinstation.engine.ingest import routes as ingest_routes
from skinstation.engine.models import routes as model_routes
from skinstation.engine.openapi import install as document_errors
from skinstation.engine.patients import routes as patient_routes
from skinstation.engine.providers import routes as provider_routes
from skinstation.engine.providers.classify import ClassifyService
from skinstation.engine.retraining import routes as retraining_routes
from skinstation.engine.review import routes as review_routes
from skinstation.engine.review import web
from skinstation.engine.stations import routes as station_routes
from skinstation.protocol.paths import API_PREFIX
from skinstation.settings import Settings

MULTIPART_OVERHEAD = 64 * 1024
API_ROUTERS = (
    # what stations call
    station_routes.station_router, ingest_routes.station_router,
    review_routes.station_router, model_routes.station_router, patient_routes.station_router,
    # what people call
    account_routes.router, review_routes.router,
    # administrators
    station_routes.admin_router, account_routes.admin_router,
    retraining_routes.admin_router, model_routes.admin_router, audit_routes.admin_router,
    patient_routes.admin_router,
    # third-party providers
    provider_routes.router, provider_routes.admin_router,
)
"""Every domain's routers under ``/api/v1``, in the order they are matched."""


@asynccontextmanager
async def _lifespan(app: FastAPI) -> AsyncIterator[None]:
    # Load the deployed model (if any) in the background so the first classify call is fast.
    threading.Thread(target=app.state.classify.warm_up, name="classify-warm-up",
                     daemon=True).start()
    yield
    app.state.classify.shutdown()
    app.state.login_guard.shutdown()


def create_app(settings: Settings | None = None) -> FastAPI:
    """Build the app on the engine database named by ``settings`` (loaded from env if None)."""
    settings = settings or Settings.load()
    db = open_engine_database(settings)
    app = FastAPI(
        title="SkinStation engine API",
        version=__version__,
        description=(
            "Central engine of SkinStation: station enrollment, capture ingest, expert "
            "review, retraining jobs, signed model distribution, and classification as a "
            "service for third-party providers (POST /api/v1/classify). Stations "
            "authenticate with their bearer token; people with the token from /auth/login; "
            "providers with their API key (Authorization: Bearer spk_... or X-API-Key). "
            "Triage support, not a diagnosis."
        ),
        openapi_url=f"{API_PREFIX}/openapi.json",
        docs_url=f"{API_PREFIX}/docs",
        redoc_url=None,
        lifespan=_lifespan,
    )
    app.state.db = db
    app.state.classify = ClassifyService(db)
    app.state.login_guard = LoginGuard(settings)
    # One set of pixel limits for every image entry: station ingest uses classification's.
    app.state.image_limits = app.state.classify.settings.limits
    for router in API_ROUTERS:
        app.include_router(router, prefix=API_PREFIX)
    app.include_router(web.router)
    for error_type, handler in ERROR_HANDLERS.items():
        app.add_exception_handler(error_type, handler)
    document_errors(app)  # every error status gets the body the engine really sends

    @app.get(f"{API_PREFIX}/health", tags=["health"])
    def health(db: Db) -> dict[str, str]:
        """Liveness for load balancers (no data, no authentication)."""
        with db.engine.connect() as connection:
            connection.execute(text("SELECT 1"))
        return {"status": "ok"}

    upload_limit = (settings.engine.max_image_bytes + settings.engine.max_metadata_bytes
                    + MULTIPART_OVERHEAD)
    # A classify call carries one image, as a file part or base64 in JSON (4/3 larger).
    classify_limit = settings.engine.max_image_bytes * 4 // 3 + MULTIPART_OVERHEAD
    limits = {f"{API_PREFIX}/captures": upload_limit, f"{API_PREFIX}/classify": classify_limit}
    app.add_middleware(BodyLimitMiddleware, limit_for=limits.get)
    return app
