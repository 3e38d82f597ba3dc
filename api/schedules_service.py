"""What the schedule routes do with Temporal Schedules: create (idempotently, within limits),
find (owned), describe, change, list.

Ownership works as for exports: a schedule carries the `ExportOwner` and `ExportTenant` search
attributes of the caller who created it; any other caller gets the same 404 as for an unknown
id. Each schedule's action starts `ScheduledExportWorkflow` with the request, the owner, the
policy snapshot and the timing as the owner gave them (`ScheduledExportInput`).

Policies: overlapping runs are skipped (`ScheduleOverlapPolicy.SKIP`: while a run's export is
still going, the next scheduled time starts nothing); a run missed while Temporal or the workers
were down starts late if it is within `SCHEDULE_CATCHUP_WINDOW_SECONDS`, and with SKIP the
several times missed by one outage start one run, not one each.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import secrets
from dataclasses import dataclass
from datetime import timedelta

from temporalio.client import (
    Client,
    Schedule,
    ScheduleActionExecutionStartWorkflow,
    ScheduleActionStartWorkflow,
    ScheduleAlreadyRunningError,
    ScheduleDescription,
    ScheduleHandle,
    ScheduleIntervalSpec,
    ScheduleOverlapPolicy,
    SchedulePolicy,
    ScheduleSpec,
    ScheduleState,
    ScheduleUpdate,
    ScheduleUpdateInput,
)
from temporalio.common import SearchAttributePair, TypedSearchAttributes
from temporalio.service import RPCError, RPCStatusCode

from api.errors import ApiError
from api.schedule_limits import SCHEDULE_ID, ScheduleLimiter, owner_schedules_query, schedule_ids
from api.schedule_schemas import ScheduleRun, ScheduleView
from api.signing import keyed_digest
from domain.export_policy import ExportPolicy
from domain.models import ExportRequest, Owner
from domain.schedules import (
    SCHEDULE_ID_PREFIX,
    ScheduleChange,
    ScheduledExportInput,
    ScheduleRequest,
    ScheduleTiming,
    dated_filename,
    run_export_id,
    run_workflow_id,
)
from domain.settings import Settings
from workflows.export_workflow import OWNER_ATTRIBUTE, TENANT_ATTRIBUTE
from workflows.scheduled_export_workflow import ScheduledExportWorkflow

RPC_TIMEOUT = timedelta(seconds=10)
MEMO_REQUEST_DIGEST = "request_sha256"


def schedule_not_found(schedule_id: str) -> ApiError:
    return ApiError(404, "not_found", f"no schedule {schedule_id!r}")


# -- building -----------------------------------------------------------------------------------


def schedule_id_for(settings: Settings, owner: Owner, idempotency_key: str | None) -> str:
    """Random; with an idempotency key an HMAC of (user, tenant, key), as for exports."""
    if idempotency_key is None:
        return SCHEDULE_ID_PREFIX + secrets.token_hex(16)
    digest = keyed_digest(
        settings.api_jwt_secret, "schedule-id", owner.user_id, owner.tenant, idempotency_key
    )
    return SCHEDULE_ID_PREFIX + digest[:16].hex()


def request_digest(request: ScheduleRequest) -> str:
    return hashlib.sha256(request.model_dump_json().encode()).hexdigest()


def check_request(settings: Settings, export: ExportRequest, timing: ScheduleTiming) -> None:
    """What pydantic cannot check alone: the shortest interval, and a dated filename that
    still fits an object key."""
    if timing.interval_seconds is not None:
        shortest = settings.schedule_min_interval_seconds
        if timing.interval_seconds < shortest:
            raise ApiError(
                422,
                "request_refused",
                f"interval_seconds: at least {shortest} s (SCHEDULE_MIN_INTERVAL_SECONDS)",
                details={"path": "interval_seconds", "reason": f"shorter than {shortest} s"},
            )
    try:
        ExportRequest.model_validate(
            {
                **export.model_dump(),
                "filename": dated_filename(export, "2000-01-01-0000"),
            }
        )
    except ValueError as exc:
        raise ApiError(
            422,
            "request_refused",
            "export.filename: too long once each run's date is added to it",
            details={"path": "export.filename", "reason": str(exc)[:300]},
        ) from exc


def _spec(timing: ScheduleTiming) -> ScheduleSpec:
    if timing.cron is not None:
        return ScheduleSpec(cron_expressions=[timing.cron], time_zone_name=timing.timezone)
    assert timing.interval_seconds is not None
    return ScheduleSpec(
        intervals=[ScheduleIntervalSpec(every=timedelta(seconds=timing.interval_seconds))],
        time_zone_name=timing.timezone,
    )


def _owner_attributes(owner: Owner) -> TypedSearchAttributes:
    return TypedSearchAttributes(
        [
            SearchAttributePair(OWNER_ATTRIBUTE, owner.user_id),
            SearchAttributePair(TENANT_ATTRIBUTE, owner.tenant),
        ]
    )


def _action(settings: Settings, job: ScheduledExportInput) -> ScheduleActionStartWorkflow:
    return ScheduleActionStartWorkflow(
        ScheduledExportWorkflow.run,
        job,
        id=run_workflow_id(job.schedule_id),
        task_queue=settings.temporal_task_queue,
        typed_search_attributes=_owner_attributes(job.owner),
    )


def _policy(settings: Settings) -> SchedulePolicy:
    return SchedulePolicy(
        overlap=ScheduleOverlapPolicy.SKIP,
        catchup_window=timedelta(seconds=settings.schedule_catchup_window_seconds),
    )


def _refused_by_temporal(exc: RPCError) -> ApiError:
    """Temporal checks the cron fields and the time zone: its refusal becomes a 422."""
    return ApiError(
        422,
        "request_refused",
        f"the schedule was refused: {exc.message}",
        details={"path": "cron", "reason": exc.message[:300]},
    )


# -- finding and describing ---------------------------------------------------------------------


@dataclass(frozen=True)
class OwnedSchedule:
    handle: ScheduleHandle
    description: ScheduleDescription


def _is_owned_by(description: ScheduleDescription, owner: Owner) -> bool:
    attributes = description.typed_search_attributes
    action = description.schedule.action
    return (
        isinstance(action, ScheduleActionStartWorkflow)
        and action.workflow == ScheduledExportWorkflow.__name__
        and attributes.get(OWNER_ATTRIBUTE) == owner.user_id
        and attributes.get(TENANT_ATTRIBUTE) == owner.tenant
    )


async def _describe_or_none(client: Client, schedule_id: str) -> ScheduleDescription | None:
    try:
        return await client.get_schedule_handle(schedule_id).describe(rpc_timeout=RPC_TIMEOUT)
    except RPCError as exc:
        if exc.status == RPCStatusCode.NOT_FOUND:
            return None
        raise


async def find_owned(client: Client, schedule_id: str, owner: Owner) -> OwnedSchedule:
    """The caller's schedule, or 404 for an unknown id and for anyone else's alike."""
    if not SCHEDULE_ID.fullmatch(schedule_id):
        raise schedule_not_found(schedule_id)
    description = await _describe_or_none(client, schedule_id)
    if description is None or not _is_owned_by(description, owner):
        raise schedule_not_found(schedule_id)
    return OwnedSchedule(client.get_schedule_handle(schedule_id), description)


async def job_of(description: ScheduleDescription) -> ScheduledExportInput:
    """The `ScheduledExportInput` the schedule's action passes to each run."""
    action = description.schedule.action
    assert isinstance(action, ScheduleActionStartWorkflow)
    decoded = await description.data_converter.decode(
        list(action.args),  # payloads, as described by the server
        [ScheduledExportInput],
    )
    job = decoded[0]
    assert isinstance(job, ScheduledExportInput)
    return job


def _run(workflow_id: str) -> str:
    return run_export_id(workflow_id)


async def view_of(description: ScheduleDescription) -> ScheduleView:
    job = await job_of(description)
    info = description.info
    policy = description.schedule.policy
    catchup = policy.catchup_window
    return ScheduleView(
        schedule_id=description.id,
        export=job.request,
        cron=job.timing.cron,
        interval_seconds=job.timing.interval_seconds,
        timezone=job.timing.timezone,
        paused=description.schedule.state.paused,
        note=description.schedule.state.note or None,
        overlap="skip",
        catchup_window_seconds=int(catchup.total_seconds()) if catchup else None,
        next_runs=list(info.next_action_times[:5]),
        recent_runs=[
            ScheduleRun(
                scheduled_at=result.scheduled_at,
                started_at=result.started_at,
                export_id=_run(result.action.workflow_id),
            )
            for result in reversed(info.recent_actions)
            if isinstance(result.action, ScheduleActionExecutionStartWorkflow)
        ],
        running_export_ids=[
            _run(action.workflow_id)
            for action in info.running_actions
            if isinstance(action, ScheduleActionExecutionStartWorkflow)
        ],
        runs=info.num_actions,
        skipped_overlapping=info.num_actions_skipped_overlap,
        missed_catchup_window=info.num_actions_missed_catchup_window,
        created_at=info.created_at,
        updated_at=info.last_updated_at,
    )


async def list_owned(client: Client, owner: Owner) -> list[ScheduleView]:
    """The caller's schedules, newest first. Visibility lists ids (eventually consistent); each
    is then described, so what is shown is current and its ownership checked again."""
    ids = await schedule_ids(client, owner_schedules_query(owner))
    descriptions = await asyncio.gather(*(_describe_or_none(client, i) for i in ids))
    owned = [d for d in descriptions if d is not None and _is_owned_by(d, owner)]
    owned.sort(key=lambda d: d.info.created_at, reverse=True)
    return [await view_of(d) for d in owned]


# -- creating and changing ----------------------------------------------------------------------


@dataclass(frozen=True)
class Created:
    view: ScheduleView
    replayed: bool


async def _replay(client: Client, schedule_id: str, owner: Owner, digest: str) -> Created:
    description = await _describe_or_none(client, schedule_id)
    if description is None or not _is_owned_by(description, owner):
        raise ApiError(409, "conflict", "this schedule is being deleted; try again")
    recorded = await description.memo_value(MEMO_REQUEST_DIGEST, None)
    if recorded != digest:
        raise ApiError(
            409,
            "idempotency_key_reused",
            "this Idempotency-Key was already used with a different request body",
        )
    return Created(await view_of(description), replayed=True)


async def create(
    client: Client,
    settings: Settings,
    limiter: ScheduleLimiter,
    owner: Owner,
    request: ScheduleRequest,
    idempotency_key: str | None,
) -> Created:
    """Create the Temporal Schedule, or find the one this idempotency key already created (a
    repeat never counts against the limits)."""
    check_request(settings, request.export, request)
    schedule_id = schedule_id_for(settings, owner, idempotency_key)
    digest = request_digest(request)
    if idempotency_key is not None and await _describe_or_none(client, schedule_id) is not None:
        return await _replay(client, schedule_id, owner, digest)
    timing = ScheduleTiming(
        cron=request.cron, interval_seconds=request.interval_seconds, timezone=request.timezone
    )
    job = ScheduledExportInput(
        schedule_id=schedule_id,
        owner=owner,
        request=request.export,
        policy=ExportPolicy.of(settings),
        timing=timing,
    )
    lock = await limiter.check_and_hold(client, owner)
    try:
        handle = await client.create_schedule(
            schedule_id,
            Schedule(
                action=_action(settings, job),
                spec=_spec(timing),
                policy=_policy(settings),
                state=ScheduleState(paused=request.paused, note=request.note),
            ),
            memo={MEMO_REQUEST_DIGEST: digest},
            search_attributes=_owner_attributes(owner),
            rpc_timeout=RPC_TIMEOUT,
        )
        limiter.record(owner, schedule_id)
    except ScheduleAlreadyRunningError:
        return await _replay(client, schedule_id, owner, digest)
    except RPCError as exc:
        if exc.status == RPCStatusCode.INVALID_ARGUMENT:
            raise _refused_by_temporal(exc) from exc
        raise
    finally:
        lock.release()
    return Created(await view_of(await handle.describe(rpc_timeout=RPC_TIMEOUT)), replayed=False)


async def change(
    client: Client, settings: Settings, schedule: OwnedSchedule, patch: ScheduleChange
) -> ScheduleView:
    """Apply a PATCH: a new request and/or timing; the policy snapshot is taken anew."""
    current = await job_of(schedule.description)
    export = patch.export or current.request
    timing = patch.timing(current.timing)
    check_request(settings, export, timing)
    job = current.model_copy(
        update={"request": export, "timing": timing, "policy": ExportPolicy.of(settings)}
    )

    def updater(update: ScheduleUpdateInput) -> ScheduleUpdate:
        described = update.description.schedule
        return ScheduleUpdate(
            schedule=dataclasses.replace(
                described,
                action=_action(settings, job),
                spec=_spec(timing),
                policy=_policy(settings),
            )
        )

    try:
        await schedule.handle.update(updater, rpc_timeout=RPC_TIMEOUT)
    except RPCError as exc:
        if exc.status == RPCStatusCode.INVALID_ARGUMENT:
            raise _refused_by_temporal(exc) from exc
        raise
    return await view_of(await schedule.handle.describe(rpc_timeout=RPC_TIMEOUT))
