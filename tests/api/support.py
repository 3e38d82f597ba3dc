"""Helpers for the API tests: serve an app under uvicorn, tokens, polling, cleanup."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, TypeVar

import httpx
import uvicorn
from temporalio.client import Client, ScheduleActionStartWorkflow, WorkflowExecutionStatus
from temporalio.service import RPCError

from api.app import create_app
from api.auth import mint_token
from domain.models import Owner
from domain.settings import Settings

SERVER_START_TIMEOUT = 20.0
T = TypeVar("T")


@dataclass(frozen=True)
class Api:
    """A served app: its base URL and the settings it was built with."""

    url: str
    settings: Settings

    def headers(self, owner: Owner, ttl: timedelta = timedelta(hours=1)) -> dict[str, str]:
        token = mint_token(self.settings.api_jwt_secret, owner.user_id, owner.tenant, ttl)
        return {"Authorization": f"Bearer {token}"}


IdleApiFactory = Callable[..., Api]
"""Builds an app on a task queue no worker polls; keyword arguments override its settings."""


@contextlib.contextmanager
def serve(settings: Settings) -> Iterator[Api]:
    """`create_app(settings)` under uvicorn (lifespan on) in a background thread."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(create_app(settings), log_level="warning", lifespan="on")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + SERVER_START_TIMEOUT
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the API server did not start")
        time.sleep(0.02)
    try:
        yield Api(url=f"http://127.0.0.1:{port}", settings=settings)
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()


def new_owner(tenant: str = "tenant-a") -> Owner:
    return Owner(user_id=f"user-{uuid.uuid4().hex[:8]}", tenant=tenant)


async def terminate_running(client: Client, query: str) -> None:
    async for execution in client.list_workflows(f"{query} AND ExecutionStatus = 'Running'"):
        if execution.status == WorkflowExecutionStatus.RUNNING:
            with contextlib.suppress(RPCError):  # it ended meanwhile
                await client.get_workflow_handle(execution.id).terminate("test teardown")


async def delete_schedules_on(client: Client, task_queues: set[str]) -> None:
    """Delete every recurring export (`sch_…` schedule) whose runs start on these queues."""
    async for entry in await client.list_schedules():
        if not entry.id.startswith("sch_"):
            continue
        handle = client.get_schedule_handle(entry.id)
        with contextlib.suppress(RPCError):
            described = await handle.describe()
            action = described.schedule.action
            if isinstance(action, ScheduleActionStartWorkflow) and action.task_queue in task_queues:
                await handle.delete()


async def eventually(
    probe: Callable[[], Awaitable[T]], until: Callable[[T], bool], within: float = 60
) -> T:
    """Call `probe` until `until(value)` holds (for what is eventually consistent, such as
    visibility); TimeoutError after `within` seconds."""
    async with asyncio.timeout(within):
        while True:
            value = await probe()
            if until(value):
                return value
            await asyncio.sleep(0.3)


async def wait_for_export(
    http: httpx.AsyncClient,
    api: Api,
    owner: Owner,
    export_id: str,
    until: Callable[[dict[str, Any]], bool],
    within: float = 120,
) -> dict[str, Any]:
    """Poll `GET /exports/{id}` until `until(view)` holds; TimeoutError after `within` seconds."""
    async with asyncio.timeout(within):
        while True:
            response = await http.get(f"{api.url}/exports/{export_id}", headers=api.headers(owner))
            assert response.status_code == 200, response.text
            view: dict[str, Any] = response.json()
            if until(view):
                return view
            await asyncio.sleep(0.2)
