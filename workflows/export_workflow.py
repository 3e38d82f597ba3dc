"""ExportWorkflow: plan, start the upload, produce parts until the source is exhausted, complete.

Deterministic orchestration only: every side effect is an activity. The durable state
(`ExportState`) holds the cursor, the upload id and the counters, so a crashed worker or a
restarted server resumes at the next part; it is carried across continue-as-new.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy, SearchAttributeKey
from temporalio.exceptions import ActivityError, ApplicationError, is_cancelled_exception

with workflow.unsafe.imports_passed_through():
    from activities.errors import NON_RETRYABLE_TYPES
    from activities.export_activities import ExportActivities
    from activities.notify_activities import NotifyActivities
    from domain.activity_io import (
        AbortRequest,
        CompleteRequest,
        Outcome,
        PartRequest,
        UploadTarget,
    )
    from domain.models import (
        PROGRESS_MEMO_KEY,
        ExportInput,
        ExportState,
        ExportStatus,
        ProgressMemo,
        ProgressView,
    )
    from workflows.task_queues import activity_task_queue

STATUS_ATTRIBUTE = SearchAttributeKey.for_keyword("ExportStatus")
OWNER_ATTRIBUTE = SearchAttributeKey.for_keyword("ExportOwner")
TENANT_ATTRIBUTE = SearchAttributeKey.for_keyword("ExportTenant")

RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(seconds=60),
    non_retryable_error_types=NON_RETRYABLE_TYPES,
)
PROGRESS_MEMO_PATCH = "progress-memo"
"""Patch id of publishing progress to the memo (histories recorded before it have no upserts)."""
SHORT = timedelta(minutes=2)
PART_TIMEOUT = timedelta(minutes=30)
PART_HEARTBEAT = timedelta(seconds=10)  # activities heartbeat every 2 s from a side thread


@workflow.defn
class ExportWorkflow:
    def __init__(self) -> None:
        self._export: ExportInput | None = None
        self._state = ExportState()

    @workflow.query
    def progress(self) -> ProgressView:
        export_id = self._export.export_id if self._export else workflow.info().workflow_id
        return ProgressView.of(export_id, self._state, workflow.now())

    @workflow.run
    async def run(self, export: ExportInput) -> ProgressView:
        self._export = export
        if export.resume is not None:
            self._state = export.resume.model_copy()
        try:
            await self._export_all(export)
        except (Exception, asyncio.CancelledError) as exc:
            # ContinueAsNewError is a BaseException and passes through untouched.
            cancelled = is_cancelled_exception(exc)
            message = "cancelled by its owner" if cancelled else _user_message(exc)
            await self._compensate(export, message, cancelled=cancelled)
            if cancelled:
                raise
            raise ApplicationError(message, type="ExportFailed", non_retryable=True) from exc
        return self.progress()

    async def _export_all(self, export: ExportInput) -> None:
        state = self._state
        if state.status == ExportStatus.PENDING:
            state.started_at = workflow.now()
            self._set_status(ExportStatus.RUNNING, "planning")
            prepared = await workflow.execute_activity_method(
                ExportActivities.prepare_export,
                export,
                task_queue=activity_task_queue(),
                start_to_close_timeout=SHORT,
                retry_policy=RETRY,
            )
            state.strategy = prepared.explanation
            state.columns = prepared.columns
            state.object_key = prepared.object_key
            state.filename = prepared.filename
            self._publish_progress()  # the strategy, for status requests during the first part
        assert state.object_key is not None
        assert state.filename is not None
        if state.upload_id is None:
            state.upload_id = await workflow.execute_activity_method(
                ExportActivities.start_upload,
                UploadTarget(export=export, object_key=state.object_key, filename=state.filename),
                task_queue=activity_task_queue(),
                start_to_close_timeout=SHORT,
                retry_policy=RETRY,
            )
        while state.status == ExportStatus.RUNNING:
            if workflow.info().is_continue_as_new_suggested():
                await workflow.wait_condition(workflow.all_handlers_finished)
                workflow.continue_as_new(export.model_copy(update={"resume": state}))
            self._details(f"part {state.next_part_number}")
            result = await workflow.execute_activity_method(
                ExportActivities.upload_next_part,
                PartRequest(
                    export=export,
                    object_key=state.object_key,
                    upload_id=state.upload_id,
                    columns=state.columns,
                    cursor=state.cursor,
                    part_number=state.next_part_number,
                    rows_so_far=state.rows,
                    bytes_so_far=state.bytes,
                    format_state=state.format_state,
                ),
                task_queue=activity_task_queue(),
                start_to_close_timeout=PART_TIMEOUT,
                heartbeat_timeout=PART_HEARTBEAT,
                retry_policy=RETRY,
                # On cancellation the workflow does not wait for this part (TRY_CANCEL): the abort
                # that follows repeats until ListParts shows nothing, so a part landing late is
                # removed too, and one uploaded after the abort is refused with NoSuchUpload.
            )
            state.cursor = result.cursor
            state.rows += result.rows
            state.bytes += result.bytes
            state.format_state = result.format_state
            for kind, count in result.warnings.items():
                state.warnings[kind] = state.warnings.get(kind, 0) + count
            state.parts_done = result.part_number
            state.next_part_number = result.part_number + 1
            self._publish_progress()
            if result.exhausted:
                self._set_status(ExportStatus.COMPLETING, "completing the upload")
        await workflow.execute_activity_method(
            ExportActivities.complete_upload,
            CompleteRequest(
                object_key=state.object_key, upload_id=state.upload_id, parts=state.parts_done
            ),
            task_queue=activity_task_queue(),
            start_to_close_timeout=SHORT,
            retry_policy=RETRY,
        )
        state.finished_at = workflow.now()
        self._set_status(ExportStatus.COMPLETED, f"{state.rows} rows, {state.bytes} bytes")
        await self._notify(export)

    async def _compensate(self, export: ExportInput, message: str, *, cancelled: bool) -> None:
        """Abort the upload and tell the owner. Runs even when the workflow is being cancelled."""
        state = self._state
        state.error = message
        state.finished_at = workflow.now()
        self._set_status(ExportStatus.CANCELLED if cancelled else ExportStatus.FAILED, message)
        if state.upload_id is not None and state.object_key is not None:
            # The cancellation was delivered (and caught) already: this activity runs normally.
            await workflow.execute_activity_method(
                ExportActivities.abort_upload,
                AbortRequest(object_key=state.object_key, upload_id=state.upload_id),
                task_queue=activity_task_queue(),
                start_to_close_timeout=SHORT,
                retry_policy=RetryPolicy(maximum_attempts=20),
            )
        await self._notify(export)

    async def _notify(self, export: ExportInput) -> None:
        state = self._state
        outcome = Outcome(
            export=export,
            status=state.status,
            object_key=state.object_key,
            filename=state.filename,
            rows=state.rows,
            bytes=state.bytes,
            error=state.error,
        )
        try:
            await workflow.execute_activity_method(
                NotifyActivities.notify,
                outcome,
                task_queue=activity_task_queue(),
                start_to_close_timeout=timedelta(minutes=1),
                retry_policy=RetryPolicy(maximum_attempts=5, initial_interval=timedelta(seconds=2)),
            )
        except ActivityError:
            workflow.logger.warning("could not notify the owner of export %s", export.export_id)

    def _set_status(self, status: ExportStatus, details: str) -> None:
        self._state.status = status
        workflow.upsert_search_attributes([STATUS_ATTRIBUTE.value_set(status.value)])
        self._publish_progress()
        self._details(details)

    def _publish_progress(self) -> None:
        """Write the counters to the memo, where the API reads them from the Temporal server
        without asking a worker. A memo upsert is a command: histories of the previous version
        have none, so it is patched in (they replay without it)."""
        if workflow.patched(PROGRESS_MEMO_PATCH):
            workflow.upsert_memo({PROGRESS_MEMO_KEY: ProgressMemo.of(self._state)})

    def _details(self, what: str) -> None:
        state = self._state
        workflow.set_current_details(
            f"**{state.status.value}** — {what}\n\n"
            f"rows: {state.rows} · bytes: {state.bytes} · parts: {state.parts_done}\n\n"
            f"strategy: {state.strategy or 'not planned yet'}"
        )


def _user_message(exc: BaseException) -> str:
    """The message of the outermost application error in the chain: what our activity said went
    wrong (its own causes, such as the driver's exception, sit further in)."""
    cause: BaseException | None = exc
    while cause is not None:
        if isinstance(cause, ApplicationError) and cause.message:
            return cause.message
        cause = cause.__cause__
    return str(exc)
