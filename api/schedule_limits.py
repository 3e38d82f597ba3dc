"""The schedule limits: at most `MAX_SCHEDULES_PER_USER` schedules per user and
`MAX_SCHEDULES_PER_TENANT` per tenant, counted in Temporal's schedule visibility by the owner's
search attributes."""

from __future__ import annotations

import asyncio
import re
import time

from temporalio.client import Client

from api.errors import ApiError
from api.visibility import VISIBILITY_RPC_TIMEOUT, quote_literal
from domain.models import Owner
from workflows.export_workflow import OWNER_ATTRIBUTE, TENANT_ATTRIBUTE

SCHEDULE_ID = re.compile(r"sch_[0-9a-f]{32}")
VISIBILITY_GRACE_SECONDS = 10.0
RETRY_AFTER_SECONDS = 30


def owner_schedules_query(owner: Owner) -> str:
    return (
        f"{OWNER_ATTRIBUTE.name} = {quote_literal(owner.user_id)} AND "
        f"{TENANT_ATTRIBUTE.name} = {quote_literal(owner.tenant)}"
    )


def tenant_schedules_query(tenant: str) -> str:
    return f"{TENANT_ATTRIBUTE.name} = {quote_literal(tenant)}"


async def schedule_ids(client: Client, query: str) -> set[str]:
    found: set[str] = set()
    async for entry in await client.list_schedules(query, rpc_timeout=VISIBILITY_RPC_TIMEOUT):
        if SCHEDULE_ID.fullmatch(entry.id):
            found.add(entry.id)
    return found


class ScheduleLimiter:
    """At most `max_schedules_per_user` schedules per user and `max_schedules_per_tenant` per
    tenant. Like the running-export limit: exact within one API process (a per-tenant lock, and
    schedules created in the last seconds counted before visibility shows them), soft across
    several."""

    def __init__(self, per_user: int, per_tenant: int) -> None:
        self._per_user = per_user
        self._per_tenant = per_tenant
        self._locks: dict[str, asyncio.Lock] = {}
        self._recent: dict[str, tuple[Owner, float]] = {}
        self._deleted: dict[str, float] = {}

    def _recent_of(self, tenant: str) -> dict[str, Owner]:
        horizon = time.monotonic() - VISIBILITY_GRACE_SECONDS
        self._recent = {i: (o, t) for i, (o, t) in self._recent.items() if t > horizon}
        self._deleted = {i: t for i, t in self._deleted.items() if t > horizon}
        return {i: o for i, (o, _) in self._recent.items() if o.tenant == tenant}

    async def check_and_hold(self, client: Client, owner: Owner) -> asyncio.Lock:
        """Take the tenant's lock (the caller releases it) and refuse with 429 at a limit."""
        lock = self._locks.setdefault(owner.tenant, asyncio.Lock())
        await lock.acquire()
        try:
            recent = self._recent_of(owner.tenant)
            in_tenant = await schedule_ids(client, tenant_schedules_query(owner.tenant))
            mine = await schedule_ids(client, owner_schedules_query(owner))
            mine = (mine | {i for i, o in recent.items() if o == owner}) - set(self._deleted)
            in_tenant = (in_tenant | set(recent)) - set(self._deleted)
            for count, limit, scope, whose in (
                (len(mine), self._per_user, "user", "you have"),
                (len(in_tenant), self._per_tenant, "tenant", "your tenant has"),
            ):
                if count >= limit:
                    raise ApiError(
                        429,
                        "too_many_schedules",
                        f"{whose} {count} schedules, the limit is {limit}; delete one first",
                        details={"count": count, "limit": limit, "scope": scope},
                        headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
                    )
        except BaseException:
            lock.release()
            raise
        return lock

    def record(self, owner: Owner, schedule_id: str) -> None:
        self._recent[schedule_id] = (owner, time.monotonic())

    def forget(self, schedule_id: str) -> None:
        """A deleted schedule: no longer counted, though visibility may list it a while."""
        self._recent.pop(schedule_id, None)
        self._deleted[schedule_id] = time.monotonic()
