"""The fair limits: at most `max_running_exports_per_user` running exports per user, and at most
`max_running_exports_per_tenant` per tenant (so many users of one tenant cannot take every
worker).

Counting then starting is not atomic, so two requests of one tenant could both pass the count.
Within one API process a per-tenant lock serialises count-and-start; exports this process
started in the last few seconds are counted even if visibility (eventually consistent) does not
show them yet. Across several API processes the limit is soft: it can be exceeded by at most
one export per extra process racing at the same instant.
"""

from __future__ import annotations

import asyncio
import time
import weakref
from collections.abc import AsyncIterator, Callable, Iterable
from contextlib import asynccontextmanager

from temporalio.client import Client, WorkflowExecutionStatus
from temporalio.service import RPCError

from api.errors import ApiError
from api.visibility import (
    EXPORT_WORKFLOW_TYPE,
    VISIBILITY_RPC_TIMEOUT,
    count_running,
    quote_literal,
)
from domain.models import Owner
from workflows.export_workflow import TENANT_ATTRIBUTE

RETRY_AFTER_SECONDS = 30
VISIBILITY_GRACE_SECONDS = 10.0


def tenant_running_query(tenant: str, *, exclude_ids: Iterable[str] = ()) -> str:
    """The visibility filter of a tenant's running exports (every user)."""
    clauses = [
        f"WorkflowType = {quote_literal(EXPORT_WORKFLOW_TYPE)}",
        f"{TENANT_ATTRIBUTE.name} = {quote_literal(tenant)}",
        "ExecutionStatus = 'Running'",
    ]
    excluded = sorted(exclude_ids)
    if excluded:
        clauses.append(f"WorkflowId NOT IN ({', '.join(map(quote_literal, excluded))})")
    return " AND ".join(clauses)


def _too_many(running: int, limit: int, whose: str) -> ApiError:
    return ApiError(
        429,
        "too_many_running_exports",
        f"{whose} {running} running exports, the limit is {limit}; "
        "wait for one to finish or cancel one",
        details={
            "running": running,
            "limit": limit,
            "scope": "user" if whose == "you have" else "tenant",
        },
        headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
    )


class RunningExportLimiter:
    def __init__(
        self,
        max_running: int,
        max_running_per_tenant: int | None = None,
        *,
        grace_seconds: float = VISIBILITY_GRACE_SECONDS,
    ) -> None:
        self._max_running = max_running
        self._max_per_tenant = max_running_per_tenant
        self._grace = grace_seconds
        self._locks: weakref.WeakValueDictionary[str, asyncio.Lock] = weakref.WeakValueDictionary()
        self._recent: dict[str, dict[str, tuple[Owner, float]]] = {}

    def _lock(self, tenant: str) -> asyncio.Lock:
        lock = self._locks.get(tenant)
        if lock is None:
            lock = asyncio.Lock()
            self._locks[tenant] = lock
        return lock

    def _recent_ids(self, tenant: str) -> dict[str, Owner]:
        horizon = time.monotonic() - self._grace
        recent = {i: (o, t) for i, (o, t) in self._recent.pop(tenant, {}).items() if t > horizon}
        if recent:
            self._recent[tenant] = recent
        return {export_id: owner for export_id, (owner, _) in recent.items()}

    async def _still_running(
        self, client: Client, tenant: str, ids: dict[str, Owner]
    ) -> dict[str, Owner]:
        """The recent ids whose exports have not ended: one that finished within the grace
        period no longer takes a slot. An id that cannot be described stays counted."""
        running = {}
        for export_id, owner in ids.items():
            try:
                described = await client.get_workflow_handle(export_id).describe()
            except RPCError:
                running[export_id] = owner
                continue
            if described.status == WorkflowExecutionStatus.RUNNING:
                running[export_id] = owner
            else:
                self._recent.get(tenant, {}).pop(export_id, None)
        return running

    def _record(self, owner: Owner, export_id: str) -> None:
        self._recent.setdefault(owner.tenant, {})[export_id] = (owner, time.monotonic())

    @asynccontextmanager
    async def slot(self, client: Client, owner: Owner) -> AsyncIterator[Callable[[str], None]]:
        """Hold the tenant's lock, refuse with 429 when the user or the tenant is at its limit,
        and yield a function to record the export id the caller then starts."""
        async with self._lock(owner.tenant):
            recent = await self._still_running(client, owner.tenant, self._recent_ids(owner.tenant))
            mine = {i for i, o in recent.items() if o == owner}
            running = await count_running(client, owner, exclude_ids=recent) + len(mine)
            if running >= self._max_running:
                raise _too_many(running, self._max_running, "you have")
            if self._max_per_tenant is not None:
                counted = await client.count_workflows(
                    tenant_running_query(owner.tenant, exclude_ids=recent),
                    rpc_timeout=VISIBILITY_RPC_TIMEOUT,
                )
                in_tenant = counted.count + len(recent)
                if in_tenant >= self._max_per_tenant:
                    raise _too_many(in_tenant, self._max_per_tenant, "your tenant has")
            yield lambda export_id: self._record(owner, export_id)
