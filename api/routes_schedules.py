"""The schedule endpoints (recurring exports). Thin: the work is in `api.schedules_service`."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Body, Header, Path, Response
from temporalio.client import ScheduleOverlapPolicy
from temporalio.service import RPCError, RPCStatusCode

from api.auth import OwnerDep
from api.deps import ServicesDep, TemporalDep
from api.errors import error_responses
from api.exports_service import IDEMPOTENCY_KEY_PATTERN
from api.planning import OffLoopJsonRoute
from api.schedule_schemas import RunAccepted, ScheduleList, ScheduleView
from api.schedules_service import (
    RPC_TIMEOUT,
    change,
    create,
    find_owned,
    list_owned,
    schedule_not_found,
    view_of,
)
from domain.schedules import ScheduleChange, ScheduleRequest

router = APIRouter(prefix="/schedules", tags=["schedules"], route_class=OffLoopJsonRoute)

ScheduleId = Annotated[str, Path(description="The id `POST /schedules` returned.", max_length=100)]
IdempotencyKey = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        pattern=IDEMPOTENCY_KEY_PATTERN,
        description="The same key from the same user gives the same schedule; the same key "
        "with a different body is refused with 409.",
    ),
]
CREATE_EXAMPLE = {
    "export": {
        "collection": "orders",
        "pipeline": [{"$match": {"status": "paid"}}],
        "filename": "paid-orders.csv",
    },
    "cron": "0 7 * * MON",
    "timezone": "Europe/Paris",
}


@router.post(
    "",
    status_code=201,
    summary="Create a recurring export",
    description="Each run is an ordinary export (own id, notifications, download link) whose "
    "filename carries the run's date. Overlapping runs are skipped; a run missed during an "
    "outage starts once, within `SCHEDULE_CATCHUP_WINDOW_SECONDS`.",
    responses=error_responses(401, 409, 413, 422, 429, 503),
)
async def create_schedule(
    body: Annotated[ScheduleRequest, Body(examples=[CREATE_EXAMPLE])],
    owner: OwnerDep,
    svc: ServicesDep,
    client: TemporalDep,
    response: Response,
    idempotency_key: IdempotencyKey = None,
) -> ScheduleView:
    await svc.planner.plan(body.export, owner)  # the same validation as POST /exports
    created = await create(client, svc.settings, svc.schedule_limiter, owner, body, idempotency_key)
    if created.replayed:
        response.headers["Idempotent-Replayed"] = "true"
    base = svc.settings.api_public_url.rstrip("/")
    response.headers["Location"] = f"{base}/schedules/{created.view.schedule_id}"
    return created.view


@router.get(
    "",
    summary="List your schedules, newest first",
    responses=error_responses(401, 503),
)
async def list_schedules(owner: OwnerDep, client: TemporalDep) -> ScheduleList:
    return ScheduleList(items=await list_owned(client, owner))


@router.get(
    "/{schedule_id}",
    summary="A schedule: its export, timing, state, next and recent runs",
    responses=error_responses(401, 404, 503),
)
async def get_schedule(
    schedule_id: ScheduleId, owner: OwnerDep, client: TemporalDep
) -> ScheduleView:
    return await view_of((await find_owned(client, schedule_id, owner)).description)


@router.patch(
    "/{schedule_id}",
    summary="Change a schedule's export or timing",
    responses=error_responses(401, 404, 413, 422, 503),
)
async def patch_schedule(
    schedule_id: ScheduleId,
    body: ScheduleChange,
    owner: OwnerDep,
    svc: ServicesDep,
    client: TemporalDep,
) -> ScheduleView:
    schedule = await find_owned(client, schedule_id, owner)
    if body.export is not None:
        await svc.planner.plan(body.export, owner)
    return await change(client, svc.settings, schedule, body)


@router.delete(
    "/{schedule_id}",
    status_code=204,
    summary="Delete a schedule (a run in progress finishes its export)",
    responses=error_responses(401, 404, 503),
)
async def delete_schedule(
    schedule_id: ScheduleId, owner: OwnerDep, svc: ServicesDep, client: TemporalDep
) -> Response:
    schedule = await find_owned(client, schedule_id, owner)
    try:
        await schedule.handle.delete(rpc_timeout=RPC_TIMEOUT)
    except RPCError as exc:
        if exc.status == RPCStatusCode.NOT_FOUND:
            raise schedule_not_found(schedule_id) from exc
        raise
    svc.schedule_limiter.forget(schedule_id)
    return Response(status_code=204)


@router.post(
    "/{schedule_id}/pause",
    summary="Pause a schedule: no run starts until it is resumed",
    responses=error_responses(401, 404, 503),
)
async def pause_schedule(
    schedule_id: ScheduleId, owner: OwnerDep, client: TemporalDep
) -> ScheduleView:
    schedule = await find_owned(client, schedule_id, owner)
    await schedule.handle.pause(note=f"paused by {owner.user_id}", rpc_timeout=RPC_TIMEOUT)
    return await view_of(await schedule.handle.describe(rpc_timeout=RPC_TIMEOUT))


@router.post(
    "/{schedule_id}/resume",
    summary="Resume a paused schedule (missed times are not made up)",
    responses=error_responses(401, 404, 503),
)
async def resume_schedule(
    schedule_id: ScheduleId, owner: OwnerDep, client: TemporalDep
) -> ScheduleView:
    schedule = await find_owned(client, schedule_id, owner)
    await schedule.handle.unpause(note=f"resumed by {owner.user_id}", rpc_timeout=RPC_TIMEOUT)
    return await view_of(await schedule.handle.describe(rpc_timeout=RPC_TIMEOUT))


@router.post(
    "/{schedule_id}/run",
    status_code=202,
    summary="Run now: start one run at once (nothing starts while a run is still going)",
    responses=error_responses(401, 404, 503),
)
async def run_schedule_now(
    schedule_id: ScheduleId, owner: OwnerDep, client: TemporalDep
) -> RunAccepted:
    schedule = await find_owned(client, schedule_id, owner)
    await schedule.handle.trigger(overlap=ScheduleOverlapPolicy.SKIP, rpc_timeout=RPC_TIMEOUT)
    return RunAccepted(
        schedule_id=schedule_id,
        message="a run starts now unless one is still going; its export appears in GET /exports",
    )
