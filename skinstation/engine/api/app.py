"""The engine's FastAPI application (versioned under ``/api/v1``; OpenAPI at ``/api/v1/docs``).

Stateless: every request reads what it needs from the database and the storage folder, so any
number of processes or machines can serve it behind a load balancer. Served by uvicorn
(``skinstation engine serve``); ``create_app`` is the factory it imports in each worker.
"""

from __future__ import annotations

from fastapi import FastAPI
from sqlalchemy import text

from skinstation import __version__
from skinstation.engine.api import admin_routes, review_routes, station_routes, web
from skinstation.engine.api.deps import ERROR_HANDLERS, BodyLimitMiddleware, Db
from skinstation.engine.database import open_engine_database
from skinstation.settings import Settings
from skinstation.sync.protocol import API_PREFIX

MULTIPART_OVERHEAD = 64 * 1024


def create_app(settings: Settings | None = None) -> FastAPI:
    """Build the app on the engine database named by ``settings`` (loaded from env if None)."""
    settings = settings or Settings.load()
    db = open_engine_database(settings)
    app = FastAPI(
        title="SkinStation engine API",
        version=__version__,
        description=(
            "Central engine of SkinStation: station enrollment, capture ingest, expert "
            "review, retraining jobs and signed model distribution. Stations authenticate "
            "with their bearer token; people with the token from /auth/login. "
            "Triage support, not a diagnosis."
        ),
        openapi_url=f"{API_PREFIX}/openapi.json",
        docs_url=f"{API_PREFIX}/docs",
        redoc_url=None,
    )
    app.state.db = db
    for router in (station_routes.router, review_routes.router, admin_routes.router):
        app.include_router(router, prefix=API_PREFIX)
    app.include_router(web.router)
    for error_type, handler in ERROR_HANDLERS.items():
        app.add_exception_handler(error_type, handler)

    @app.get(f"{API_PREFIX}/health", tags=["health"])
    def health(db: Db) -> dict[str, str]:
        """Liveness for load balancers (no data, no authentication)."""
        with db.engine.connect() as connection:
            connection.execute(text("SELECT 1"))
        return {"status": "ok"}

    upload_limit = (settings.engine.max_image_bytes + settings.engine.max_metadata_bytes
                    + MULTIPART_OVERHEAD)
    app.add_middleware(
        BodyLimitMiddleware,
        limit_for=lambda path: upload_limit if path == f"{API_PREFIX}/captures" else None,
    )
    return app
