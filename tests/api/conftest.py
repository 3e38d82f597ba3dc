"""The API served by uvicorn on free 127.0.0.1 ports, against the live local stack.

Each app runs in its own thread and event loop, as in production, with its own Temporal and S3
clients. The main app's task queue has an in-process worker (in the test session's loop); "idle"
apps use task queues no worker polls, so their exports stay PENDING until a test says otherwise.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
from temporalio.client import Client

from domain.settings import Settings
from tests.api.support import Api, IdleApiFactory, delete_schedules_on, serve, terminate_running
from tests.integration import export_harness


@pytest.fixture(scope="session")
def api_settings(settings: Settings) -> Settings:
    """The session's settings with a task queue of its own, shared by the app and its worker."""
    return settings.model_copy(update={"temporal_task_queue": f"api-tests-{uuid.uuid4().hex[:8]}"})


@pytest.fixture(scope="session")
async def temporal(api_settings: Settings) -> AsyncIterator[Client]:
    """The in-process worker for the main app's task queue, and its client."""
    async with export_harness.in_process_worker(api_settings) as client:
        yield client


@pytest.fixture(scope="session")
def api(api_settings: Settings, temporal: Client) -> Iterator[Api]:
    with serve(api_settings) as served:
        yield served


@contextlib.asynccontextmanager
async def _idle_apis(api_settings: Settings, temporal: Client) -> AsyncIterator[IdleApiFactory]:
    queues: list[str] = []
    with contextlib.ExitStack() as stack:

        def make(**overrides: Any) -> Api:
            queue = f"api-idle-{uuid.uuid4().hex[:8]}"
            queues.append(queue)
            update = {"temporal_task_queue": queue, **overrides}
            return stack.enter_context(serve(api_settings.model_copy(update=update)))

        yield make
    await delete_schedules_on(temporal, set(queues))
    for queue in queues:
        await terminate_running(temporal, f"TaskQueue = '{queue}'")


@pytest.fixture
async def idle_api(api_settings: Settings, temporal: Client) -> AsyncIterator[IdleApiFactory]:
    """A factory of apps on task queues no worker polls; their exports stay PENDING. At teardown
    every workflow still running on those queues is terminated."""
    async with _idle_apis(api_settings, temporal) as make:
        yield make


@pytest.fixture(scope="module")
async def idle_api_module(
    api_settings: Settings, temporal: Client
) -> AsyncIterator[IdleApiFactory]:
    """`idle_api` shared by a module's tests."""
    async with _idle_apis(api_settings, temporal) as make:
        yield make


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=30) as client:
        yield client


@pytest.fixture
def collection(api_settings: Settings, unique_name: str) -> Iterator[str]:
    yield unique_name
    export_harness.drop(api_settings, unique_name)
