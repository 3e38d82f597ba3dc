"""JanitorWorkflow, run on a Temporal Schedule: aborts uploads that no running export owns."""

from __future__ import annotations

import contextlib
from datetime import timedelta

from temporalio import workflow
from temporalio.client import (
    Client,
    Schedule,
    ScheduleActionStartWorkflow,
    ScheduleAlreadyRunningError,
    ScheduleIntervalSpec,
    ScheduleSpec,
)

with workflow.unsafe.imports_passed_through():
    from activities.janitor_activities import JanitorActivities
    from domain.activity_io import JanitorReport, JanitorRequest
    from domain.settings import Settings
    from workflows.task_queues import activity_task_queue

SCHEDULE_ID = "export-janitor"


@workflow.defn
class JanitorWorkflow:
    @workflow.run
    async def run(self, request: JanitorRequest) -> JanitorReport:
        return await workflow.execute_activity_method(
            JanitorActivities.abort_orphaned_uploads,
            request,
            task_queue=activity_task_queue(),
            start_to_close_timeout=timedelta(minutes=10),
        )


async def ensure_janitor_schedule(client: Client, settings: Settings) -> None:
    """Create the janitor's schedule unless it exists (every worker calls this at start)."""
    with contextlib.suppress(ScheduleAlreadyRunningError):
        await client.create_schedule(
            SCHEDULE_ID,
            Schedule(
                action=ScheduleActionStartWorkflow(
                    JanitorWorkflow.run,
                    JanitorRequest(max_age_seconds=settings.janitor_max_age_seconds),
                    id=f"{SCHEDULE_ID}-run",
                    task_queue=settings.temporal_task_queue,
                ),
                spec=ScheduleSpec(
                    intervals=[
                        ScheduleIntervalSpec(
                            every=timedelta(seconds=settings.janitor_interval_seconds)
                        )
                    ]
                ),
            ),
        )
