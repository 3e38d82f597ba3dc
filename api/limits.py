"""The fair limit: at most `max_running_exports_per_user` running exports per user.

Counting then starting is not atomic, so two requests of one user could both pass the count.
Within one API process a per-owner lock serialises count-and-start; exports this process
started in the last few seconds are counted even if visibility (eventually consistent) does not
show them yet. Across several API processes the limit is soft: it can be exceeded by at most
one export per extra process racing at the same instant.
"""

from __future__ import annotations

import asyncio
import time
import weakref
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

from temporalio.client import Client, WorkflowExecutionStatus
from temporalio.service import RPCError

from api.errors import ApiError
from api.visibility import count_running
from domain.models import Owner

RETRY_AFTER_SECONDS = 30
VISIBILITY_GRACE_SECONDS = 10.0


class RunningExportLimiter:
    def __init__(
        self, max_running: int, *, grace_seconds: float = VISIBILITY_GRACE_SECONDS
    ) -> None:
        self._max_running = max_running
        self._grace = grace_seconds
        self._locks: weakref.WeakValueDictionary[Owner, asyncio.Lock] = (
            weakref.WeakValueDictionary()
        )
        self._recent: dict[Owner, dict[str, float]] = {}

    def _lock(self, owner: Owner) -> asyncio.Lock:
        lock = self._locks.get(owner)
        if lock is None:
            lock = asyncio.Lock()
            self._locks[owner] = lock
        return lock

    def _recent_ids(self, owner: Owner) -> set[str]:
        horizon = time.monotonic() - self._grace
        recent = {i: t for i, t in self._recent.pop(owner, {}).items() if t > horizon}
        if recent:
            self._recent[owner] = recent
        return set(recent)

    async def _still_running(self, client: Client, owner: Owner, ids: set[str]) -> set[str]:
        """The recent ids whose exports have not ended: one that finished within the grace
        period no longer takes a slot. An id that cannot be described stays counted."""
        running = set()
        for export_id in ids:
            try:
                described = await client.get_workflow_handle(export_id).describe()
            except RPCError:
                running.add(export_id)
                continue
            if described.status == WorkflowExecutionStatus.RUNNING:
                running.add(export_id)
            else:
                self._recent.get(owner, {}).pop(export_id, None)
        return running

    def _record(self, owner: Owner, export_id: str) -> None:
        self._recent.setdefault(owner, {})[export_id] = time.monotonic()

    @asynccontextmanager
    async def slot(self, client: Client, owner: Owner) -> AsyncIterator[Callable[[str], None]]:
        """Hold the owner's lock, refuse with 429 when at the limit, and yield a function to
        record the export id the caller then starts."""
        async with self._lock(owner):
            recent = await self._still_running(client, owner, self._recent_ids(owner))
            running = await count_running(client, owner, exclude_ids=recent) + len(recent)
            if running >= self._max_running:
                raise ApiError(
                    429,
                    "too_many_running_exports",
                    f"you have {running} running exports, the limit is {self._max_running}; "
                    "wait for one to finish or cancel one",
                    details={"running": running, "limit": self._max_running},
                    headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
                )
            yield lambda export_id: self._record(owner, export_id)
