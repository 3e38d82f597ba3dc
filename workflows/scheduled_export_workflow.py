"""ScheduledExportWorkflow: one run of a schedule (issue 17). It starts one ordinary export as a
child workflow and waits for it, so that the schedule's overlap policy (SKIP) sees a run as
running until its export has ended.

The export is an `ExportWorkflow` like any other: its own id (derived from this run's workflow
id, so a restarted worker that replays this run never starts a second export), the owner's
search attributes (it is listed, owned and cancelled like any export), notifications and
presigned links; its filename carries the run's scheduled date in the schedule's time zone.
"""

from __future__ import annotations

from temporalio import workflow
from temporalio.common import SearchAttributeKey, SearchAttributePair, TypedSearchAttributes
from temporalio.exceptions import ChildWorkflowError
from temporalio.workflow import ParentClosePolicy

with workflow.unsafe.imports_passed_through():
    import email_validator  # noqa: F401 (domain.models validates e-mail with it)

    from domain.models import ExportInput, ExportStatus, ProgressView
    from domain.schedules import (
        ScheduledExportInput,
        dated_filename,
        run_date_label,
        run_export_id,
    )
    from workflows.export_workflow import (
        OWNER_ATTRIBUTE,
        STATUS_ATTRIBUTE,
        TENANT_ATTRIBUTE,
        ExportWorkflow,
    )

SCHEDULED_START_TIME = SearchAttributeKey.for_datetime("TemporalScheduledStartTime")
"""Set by Temporal on each workflow a schedule starts: the time it was scheduled for."""
MEMO_SCHEDULE_ID = "schedule_id"


@workflow.defn
class ScheduledExportWorkflow:
    @workflow.run
    async def run(self, job: ScheduledExportInput) -> str:
        """Start this run's export, wait for it to end, return its id and how it ended."""
        info = workflow.info()
        scheduled = info.typed_search_attributes.get(SCHEDULED_START_TIME) or workflow.now()
        export_id = run_export_id(info.workflow_id)
        label = run_date_label(scheduled, job.timing.timezone)
        request = job.request.model_copy(update={"filename": dated_filename(job.request, label)})
        export = ExportInput(
            export_id=export_id,
            owner=job.owner,
            request=request,
            requested_at=workflow.now(),
            policy=job.policy,
        )
        try:
            result: ProgressView = await workflow.execute_child_workflow(
                ExportWorkflow.run,
                export,
                id=export_id,
                task_queue=info.task_queue,
                parent_close_policy=ParentClosePolicy.ABANDON,
                memo={MEMO_SCHEDULE_ID: job.schedule_id},
                static_summary=f"scheduled export {label} of schedule {job.schedule_id}",
                search_attributes=TypedSearchAttributes(
                    [
                        SearchAttributePair(OWNER_ATTRIBUTE, job.owner.user_id),
                        SearchAttributePair(TENANT_ATTRIBUTE, job.owner.tenant),
                        SearchAttributePair(STATUS_ATTRIBUTE, ExportStatus.PENDING.value),
                    ]
                ),
            )
        except ChildWorkflowError as exc:
            # A failed or cancelled export is the export's outcome, not this run's failure:
            # the schedule goes on (its owner was notified by the export itself).
            workflow.logger.info("scheduled export %s did not complete: %s", export_id, exc)
            return f"{export_id} did not complete"
        return f"{export_id} {result.status.value}"
