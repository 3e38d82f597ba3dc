"""Planning a request off the event loop, bounded.

Parsing, validating and planning a 1 MiB body is pure Python and takes about a second. On the
event loop it would stall every other request (`/healthz` included), so the JSON parsing of the
export routes' bodies (`OffLoopJsonRoute`) and the planning run in a small thread pool of its
own: at most `API_PLANNING_THREADS` of these run at once, each step (parsing, planning) waits
at most `API_PLANNING_TIMEOUT_SECONDS` for a thread and its result together (then 503 with
`Retry-After`), and a thread is counted busy until its work has really finished, so the CPU the
API spends on this stays bounded even when callers give up.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, TypeVar

from fastapi import Request, Response
from fastapi.routing import APIRoute

from api.errors import ApiError
from domain.models import ExportRequest, Owner
from domain.pipeline.export_plan import ExportRefused, plan_export
from domain.pipeline.planning import ChunkPlan
from domain.settings import Settings

RETRY_AFTER_SECONDS = 5
T = TypeVar("T")


def refused(exc: ExportRefused) -> ApiError:
    """422 naming the path and the reason, in the message and as `details`."""
    code = (
        "pipeline_refused" if exc.path.startswith(("pipeline", "collection")) else "request_refused"
    )
    return ApiError(422, code, str(exc), details={"path": exc.path, "reason": exc.reason})


class Planner:
    """Plans requests in a bounded thread pool (one per API process)."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._threads = settings.api_planning_threads
        self._timeout = settings.api_planning_timeout_seconds
        self._slots = asyncio.Semaphore(self._threads)
        self._pool = ThreadPoolExecutor(self._threads, thread_name_prefix="planning")

    async def plan(self, request: ExportRequest, owner: Owner) -> ChunkPlan:
        """The chunk plan, 422 when refused, 503 when planning is busy or too slow."""
        try:
            return await self.run(plan_export, request, owner, self._settings)
        except ExportRefused as exc:
            raise refused(exc) from exc

    async def parse_json(self, body: bytes) -> Any:
        """`json.loads(body)` in the pool: a 1 MiB body of small objects takes ~0.2 s to parse,
        which on the event loop would stall every other request."""
        return await self.run(json.loads, body)

    async def run(self, function: Callable[..., T], *args: Any) -> T:
        """`function(*args)` in the bounded pool, within the planning deadline (else 503)."""
        deadline = time.monotonic() + self._timeout
        try:
            async with asyncio.timeout(self._timeout):
                await self._slots.acquire()
        except TimeoutError as exc:
            raise self._busy("every planning thread is busy") from exc
        future: Future[T] = self._pool.submit(function, *args)
        loop = asyncio.get_running_loop()
        future.add_done_callback(lambda _: self._release(loop))
        try:
            async with asyncio.timeout(max(0.0, deadline - time.monotonic())):
                return await asyncio.wrap_future(future)
        except TimeoutError as exc:
            raise self._busy(f"planning took longer than {self._timeout:g} s") from exc

    def _release(self, loop: asyncio.AbstractEventLoop) -> None:
        """Free the slot once the thread is done (called in the thread: hand it to the loop)."""
        with contextlib.suppress(RuntimeError):  # the loop closed meanwhile
            loop.call_soon_threadsafe(self._slots.release)

    def _busy(self, why: str) -> ApiError:
        return ApiError(
            503,
            "planning_busy",
            f"the request could not be planned in time ({why}); try again",
            headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
        )

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)


class _OffLoopJsonRequest(Request):
    """A request whose JSON body was parsed in the planning pool before FastAPI asks for it."""

    _parse_error: Exception | None = None

    async def parse_off_loop(self) -> None:
        body = await self.body()
        if not body:
            return
        planner: Planner = self.app.state.services.planner
        try:
            self._json = await planner.parse_json(body)
        except ApiError:
            raise  # the pool is busy: 503
        except Exception as exc:
            # JSONDecodeError becomes FastAPI's 422; anything else (not UTF-8, nested too
            # deep for the parser) its 400 "There was an error parsing the body".
            self._parse_error = exc

    async def json(self) -> Any:
        if self._parse_error is not None:
            raise self._parse_error
        if not hasattr(self, "_json"):
            self._json = json.loads(await self.body())
        return self._json


class OffLoopJsonRoute(APIRoute):
    """A route whose JSON body is parsed in the planning pool rather than on the event loop.

    The body is parsed before FastAPI's own handler runs (a busy pool answers 503 here: inside
    FastAPI's body parsing any error would become a 400); FastAPI's `request.json()` then finds
    the parsed value."""

    def get_route_handler(self) -> Callable[[Request], Any]:
        handler = super().get_route_handler()

        async def off_loop(request: Request) -> Response:
            parsed = _OffLoopJsonRequest(request.scope, request.receive)
            if request.method in ("POST", "PUT", "PATCH"):
                await parsed.parse_off_loop()
            response: Response = await handler(parsed)
            return response

        return off_loop
