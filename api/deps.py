"""What routes depend on: the settings and the clients the lifespan created once."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Any, cast

from fastapi import Depends, Request
from temporalio.client import Client

from api.limits import RunningExportLimiter
from api.metrics import ApiMetrics
from api.planning import Planner
from api.schedule_limits import ScheduleLimiter
from api.temporal_gateway import TemporalGateway
from domain.settings import Settings

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client
else:
    S3Client = Any


@dataclass(frozen=True)
class Services:
    """Process-wide objects, built by the app's lifespan and shared by every request."""

    settings: Settings
    temporal: TemporalGateway
    s3: S3Client
    metrics: ApiMetrics
    limiter: RunningExportLimiter
    planner: Planner
    schedule_limiter: ScheduleLimiter


def services(request: Request) -> Services:
    return cast(Services, request.app.state.services)


def settings(request: Request) -> Settings:
    """The app's settings; available before the lifespan ran (middleware needs them too)."""
    return cast(Settings, request.app.state.settings)


async def temporal_client(svc: Annotated[Services, Depends(services)]) -> Client:
    """The Temporal client, or 503 when Temporal cannot be reached."""
    return await svc.temporal.client()


ServicesDep = Annotated[Services, Depends(services)]
SettingsDep = Annotated[Settings, Depends(settings)]
TemporalDep = Annotated[Client, Depends(temporal_client)]
