"""The FastAPI application: `create_app(settings)` wires routes, middleware and error handlers;
its lifespan creates the Temporal and S3 clients once for the whole process."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from api import routes_exports, routes_health, routes_schedules
from api.body_limit import BodySizeLimitMiddleware
from api.deps import Services
from api.errors import install_error_handlers
from api.identity_provider import IdentityProviderKeys
from api.limits import RunningExportLimiter
from api.metrics import ApiMetrics, MetricsMiddleware
from api.planning import Planner
from api.schedule_limits import ScheduleLimiter
from api.temporal_gateway import TemporalGateway
from api.ui import routes as ui_routes
from connections.s3 import make_presigning_client
from domain.settings import Settings, get_settings

logger = logging.getLogger("export-api")

DESCRIPTION = """
Durable exports of MongoDB aggregations to S3. `POST /exports` answers at once with an id; a
Temporal workflow reads the aggregation in chunks and streams CSV or JSON Lines into S3;
`GET /exports/{id}` shows progress and, once complete, a fresh presigned download link.

Every endpoint but the operational ones needs `Authorization: Bearer <JWT>`: HS256 with the
claims `sub`, `tenant`, `exp`, or a token of the identity provider the API is configured with
(RS256, ES256, EdDSA, verified against its JWKS). Errors always have the shape
`{"error": {"status", "code", "message", "details"?}}`.
"""


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()
    metrics = ApiMetrics()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        settings.require_secure_secrets()
        planner = Planner(settings)
        temporal = TemporalGateway(settings)
        await temporal.try_connect()  # a Temporal that is down is not fatal: 503 until it is up
        app.state.services = Services(
            settings=settings,
            temporal=temporal,
            s3=make_presigning_client(settings),  # the API's S3 calls only presign links
            metrics=metrics,
            limiter=RunningExportLimiter(
                settings.max_running_exports_per_user, settings.max_running_exports_per_tenant
            ),
            planner=planner,
            schedule_limiter=ScheduleLimiter(
                settings.max_schedules_per_user, settings.max_schedules_per_tenant
            ),
        )
        try:
            yield
        finally:
            planner.close()

    app = FastAPI(
        title="Durable export API",
        version="0.1.0",
        description=DESCRIPTION,
        lifespan=lifespan,
    )
    app.state.settings = settings
    # One key cache per app (not per request); built here so a bad configuration stops the start.
    app.state.identity_provider = IdentityProviderKeys(settings) if settings.api_jwks_url else None
    install_error_handlers(app)
    app.include_router(routes_exports.router)
    app.include_router(routes_schedules.router)
    app.include_router(routes_health.router)
    app.include_router(ui_routes.router)
    app.mount("/ui/static", ui_routes.static_files, name="ui-static")
    app.add_middleware(BodySizeLimitMiddleware, max_bytes=settings.api_max_body_bytes)
    app.add_middleware(MetricsMiddleware, metrics=metrics)  # outermost: sees 413s too
    return app
