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
from temporalio.workflow import ActivityCancellationType

with workflow.unsafe.imports_passed_through():
    import email_validator  # noqa: F401 (domain.models validates e-mail with it)

    from activities.errors import NON_RETRYABLE_TYPES
    from activities.export_activities import ExportActivities
    from activities.notify_activities import NotifyActivities
    from activities.partition_activities import (
        ComposeRequest,
        DiscardRequest,
        PartitionActivities,
        PartitionPlan,
        partition_key,
    )
    from domain.activity_io import (
        AbortRequest,
        Channel,
        ChannelNotice,
        CompleteRequest,
        Outcome,
        PartRequest,
        PartResult,
        UploadTarget,
    )
    from domain.export_policy import ExportPolicy
    from domain.models import (
        PROGRESS_MEMO_KEY,
        ExportInput,
        ExportState,
        ExportStatus,
        PartitionProgress,
        PartitionSpec,
        PartRecord,
        ProgressMemo,
        ProgressView,
    )
    from workflows.task_queues import activity_task_queue

STATUS_ATTRIBUTE = SearchAttributeKey.for_keyword("ExportStatus")
OWNER_ATTRIBUTE = SearchAttributeKey.for_keyword("ExportOwner")
TENANT_ATTRIBUTE = SearchAttributeKey.for_keyword("ExportTenant")

PROGRESS_MEMO_PATCH = "progress-memo"
"""Patch id of publishing progress to the memo (histories recorded before it have no upserts)."""
PATCH_BOUNDED = "bounded-failures-1"
"""Marks histories of the release with a deadline, one notify activity per channel and a start
that aborts every upload of its key when cancelled. Histories without it replay as before."""

PATCH_PARTITIONS = "parallel-partitions-1"
"""Marks histories of the release that may cut an export into partitions (child workflows
composed into one object, issue 16). Histories without it never plan partitions."""

SHORT = timedelta(minutes=2)
COMPOSE_TIMEOUT = timedelta(hours=2)
PART_TIMEOUT = timedelta(minutes=30)
HEARTBEAT = timedelta(seconds=10)  # activities heartbeat every 2 s from a side thread
REPAIR_ROUNDS = 3
REPORT_EVERY = 8
NOTIFY_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=2),
    maximum_interval=timedelta(seconds=30),
    maximum_attempts=5,
)


def retry_policy(policy: ExportPolicy, *, at_least: int = 1) -> RetryPolicy:
    """Bounded retries with backoff: when the attempts run out, the last error ends the export."""
    return RetryPolicy(
        initial_interval=timedelta(seconds=1),
        backoff_coefficient=2.0,
        maximum_interval=timedelta(seconds=60),
        maximum_attempts=max(policy.activity_max_attempts, at_least),
        non_retryable_error_types=NON_RETRYABLE_TYPES,
    )


@workflow.defn
class ExportWorkflow:
    def __init__(self) -> None:
        self._export: ExportInput | None = None
        self._state = ExportState()
        self._policy = ExportPolicy()
        self._bounded = False
        self._upload_started = False
        self._notified: set[Channel] = set()

    @workflow.signal
    def partition_progress(self, progress: PartitionProgress) -> None:
        """A partition's counters after one of its parts: the parent's are their sums."""
        partitions = self._state.partitions
        if not partitions or not 0 <= progress.index < len(partitions):
            return
        if progress.parts < partitions[progress.index].parts:
            return  # an older report arriving late
        partitions[progress.index] = progress
        self._sum_partitions()
        self._publish_progress()

    @workflow.query
    def progress(self) -> ProgressView:
        export_id = self._export.export_id if self._export else workflow.info().workflow_id
        return ProgressView.of(export_id, self._state, workflow.now())

    @workflow.run
    async def run(self, export: ExportInput) -> ProgressView:
        self._export = export
        self._policy = export.policy or ExportPolicy()
        self._bounded = workflow.patched(PATCH_BOUNDED)
        if export.resume is not None:
            self._state = export.resume.model_copy()
            if self._state.columns is None:
                self._state.columns = export.request.columns  # not repeated in `resume`
        try:
            if self._bounded:
                await asyncio.wait_for(self._export_all(export), timeout=max(1, self._time_left()))
            else:
                await self._export_all(export)
        except (Exception, asyncio.CancelledError) as exc:
            # ContinueAsNewError is a BaseException and passes through untouched.
            # At the deadline `wait_for` cancels the export: what surfaces is a TimeoutError, or
            # the cancelled activity's error.
            timed_out = isinstance(exc, TimeoutError) or (
                self._bounded and is_cancelled_exception(exc) and self._time_left() <= 0
            )
            cancelled = not timed_out and is_cancelled_exception(exc)
            if (cancelled or timed_out) and self._bounded and self._too_late_to_stop():
                # The file is complete or being completed: finishing beats leaving it behind.
                await self._finish(export)
                return self.progress()
            if cancelled:
                message = "cancelled by its owner"
            elif timed_out:
                message = (
                    f"the export did not finish within its deadline of "
                    f"{self._policy.export_deadline_seconds} s (EXPORT_DEADLINE_SECONDS)"
                )
            else:
                message = _user_message(exc)
            await self._compensate(export, message, cancelled=cancelled)
            if cancelled:
                raise
            raise ApplicationError(message, type="ExportFailed", non_retryable=True) from exc
        return self.progress()

    # -- the flow: prepare → start_upload → parts … → complete → notify ------------------------

    async def _export_all(self, export: ExportInput) -> None:
        if self._state.status == ExportStatus.PENDING:
            await self._prepare(export)
        if self._may_partition(export):
            await self._plan_partitions(export)
        if self._state.partitions:
            await self._run_partitions(export)
            self._set_status(ExportStatus.COMPLETING, "composing the partitions")
            await self._finish(export)
            return
        if self._state.upload_id is None:
            await self._start_upload(export)
        while self._state.status == ExportStatus.RUNNING:
            await self._continue_as_new_if_suggested(export)
            await self._write_next_part(export)
        await self._finish(export)

    async def _prepare(self, export: ExportInput) -> None:
        state = self._state
        state.started_at = workflow.now()
        self._set_status(ExportStatus.RUNNING, "planning")
        prepared = await workflow.execute_activity_method(
            ExportActivities.prepare_export,
            export,
            task_queue=activity_task_queue(),
            start_to_close_timeout=self._policy.query_timeout,
            heartbeat_timeout=HEARTBEAT,
            retry_policy=retry_policy(self._policy),
        )
        state.strategy = prepared.explanation
        state.columns = prepared.columns
        state.object_key = prepared.object_key
        state.filename = prepared.filename
        self._publish_progress()  # the strategy, for status requests during the first part

    # -- parallel exports: partitions as child workflows, composed in order (issue 16) ----------

    def _may_partition(self, export: ExportInput) -> bool:
        """Whether to ask how to partition: only a new parent export (never a partition, never
        a history recorded before partitions) of a format that can be concatenated."""
        state = self._state
        return (
            export.partition is None
            and state.partitions is None
            and state.upload_id is None
            and export.request.parallelism != 1
            and export.request.format in ("csv", "jsonl")
            and workflow.patched(PATCH_PARTITIONS)
        )

    async def _plan_partitions(self, export: ExportInput) -> None:
        state = self._state
        planned: PartitionPlan = await workflow.execute_activity_method(
            PartitionActivities.plan_partitions,
            export,
            task_queue=activity_task_queue(),
            start_to_close_timeout=self._policy.query_timeout * 2,
            heartbeat_timeout=HEARTBEAT,
            retry_policy=retry_policy(self._policy),
        )
        state.partitioning = planned.decision
        state.partition_bounds = planned.bounds or None
        state.partition_prefix = planned.prefix
        count = len(planned.bounds) + 1 if planned.bounds else 0
        state.partitions = [PartitionProgress(index=i) for i in range(count)]
        self._publish_progress()

    def _partition_input(self, export: ExportInput, index: int) -> ExportInput:
        """The child's input: the parent's request, resumed at its lower boundary."""
        state = self._state
        bounds = state.partition_bounds or []
        start = ExportState(
            status=ExportStatus.RUNNING,
            strategy=state.strategy,
            object_key=partition_key(state.partition_prefix or "", index),
            filename=state.filename,
            columns=state.columns,
            cursor=bounds[index - 1] if index > 0 else None,
            started_at=state.started_at,
        )
        return export.model_copy(
            update={
                "resume": start,
                "partition": PartitionSpec(
                    index=index,
                    parent_workflow_id=workflow.info().workflow_id,
                    upper=bounds[index] if index < len(bounds) else None,
                ),
            }
        )

    async def _run_partitions(self, export: ExportInput) -> None:
        """Every partition at once, each a child ExportWorkflow; a failed one stops the rest."""
        state = self._state
        assert state.partitions is not None
        self._details(f"{len(state.partitions)} partitions")
        # From the input, not workflow.info(): a replay under another workflow id (the
        # recorded histories) must issue the same commands.
        parent = export.export_id
        tasks = [
            asyncio.ensure_future(
                workflow.execute_child_workflow(
                    ExportWorkflow.run,
                    self._partition_input(export, index),
                    id=f"{parent}--partition-{index}",
                )
            )
            for index in range(len(state.partitions))
        ]
        try:
            results = await asyncio.gather(*tasks)
        except BaseException:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            raise
        for index, result in enumerate(results):
            state.partitions[index] = PartitionProgress(
                index=index,
                rows=result.rows,
                bytes=result.bytes,
                parts=result.parts,
                warnings=result.warnings,
            )
        self._sum_partitions()

    def _sum_partitions(self) -> None:
        state = self._state
        partitions = state.partitions or []
        state.rows = sum(p.rows for p in partitions)
        state.bytes = sum(p.bytes for p in partitions)
        state.parts_done = sum(p.parts for p in partitions)
        warnings: dict[str, int] = {}
        for partition in partitions:
            for kind, count in partition.warnings.items():
                warnings[kind] = warnings.get(kind, 0) + count
        state.warnings = warnings

    async def _compose(self, export: ExportInput) -> None:
        state = self._state
        assert state.object_key is not None
        assert state.filename is not None
        assert state.partitions is not None
        self._upload_started = True  # a cancelled compose leaves an upload of the key: abort it
        composed = await workflow.execute_activity_method(
            PartitionActivities.compose_partitions,
            ComposeRequest(
                export=export,
                object_key=state.object_key,
                filename=state.filename,
                prefix=state.partition_prefix or "",
                partitions=len(state.partitions),
                rows=state.rows,
            ),
            task_queue=activity_task_queue(),
            start_to_close_timeout=COMPOSE_TIMEOUT,
            heartbeat_timeout=HEARTBEAT,
            retry_policy=retry_policy(self._policy),
        )
        state.bytes = composed.bytes
        state.parts_done = composed.parts
        await self._discard_partitions(export)

    async def _discard_partitions(self, export: ExportInput) -> None:
        await workflow.execute_activity_method(
            PartitionActivities.discard_partitions,
            DiscardRequest(prefix=self._state.partition_prefix or ""),
            task_queue=activity_task_queue(),
            start_to_close_timeout=SHORT,
            heartbeat_timeout=HEARTBEAT,
            retry_policy=retry_policy(self._policy, at_least=20),
        )

    async def _report_to_parent(self, export: ExportInput) -> None:
        """A partition tells its parent its counters (the parent sums them into its memo) after
        each of its first REPORT_EVERY parts, then after every REPORT_EVERY-th: each report
        costs the parent about five history events, and a parent never continues as new, so
        the reports stay far from Temporal's 50,000-event limit even for partitions of
        thousands of parts. Its final counters reach the parent with its result."""
        partition = export.partition
        state = self._state
        done = state.parts_done
        if partition is None or (done > REPORT_EVERY and done % REPORT_EVERY):
            return
        try:
            await workflow.get_external_workflow_handle(partition.parent_workflow_id).signal(
                ExportWorkflow.partition_progress,
                PartitionProgress(
                    index=partition.index,
                    rows=state.rows,
                    bytes=state.bytes,
                    parts=state.parts_done,
                    warnings=dict(state.warnings),
                ),
            )
        except Exception as exc:  # the parent is gone: it stops this child itself
            workflow.logger.warning("could not report to the parent: %s", exc)

    async def _start_upload(self, export: ExportInput) -> None:
        state = self._state
        assert state.object_key is not None
        assert state.filename is not None
        self._upload_started = True
        state.upload_id = await workflow.execute_activity_method(
            ExportActivities.start_upload,
            UploadTarget(export=export, object_key=state.object_key, filename=state.filename),
            task_queue=activity_task_queue(),
            start_to_close_timeout=SHORT,
            heartbeat_timeout=HEARTBEAT,
            retry_policy=retry_policy(self._policy),
            # On cancellation, wait until the start has really stopped: the abort that follows
            # then finds any upload it created under the key.
            cancellation_type=(
                ActivityCancellationType.WAIT_CANCELLATION_COMPLETED
                if self._bounded
                else ActivityCancellationType.TRY_CANCEL
            ),
        )
        task = asyncio.current_task()
        if self._bounded and task is not None and task.cancelling():
            # The start finished despite the cancellation, which it thereby swallowed.
            raise asyncio.CancelledError("cancelled while the upload started")

    async def _continue_as_new_if_suggested(self, export: ExportInput) -> None:
        if not workflow.info().is_continue_as_new_suggested():
            return
        state = self._state
        if state.unverified_parts:
            await self._verify_parts(export, complete=False)
            state.unverified_parts = []
        # The columns are in the request already when it named them: do not carry them twice.
        same = state.columns == export.request.columns
        resume = state.model_copy(update={"columns": None}) if same else state
        workflow.continue_as_new(export.model_copy(update={"resume": resume}))

    async def _write_next_part(self, export: ExportInput) -> None:
        state = self._state
        self._details(f"part {state.next_part_number}")
        record = PartRecord(
            number=state.next_part_number,
            etag="",
            cursor_before=state.cursor,
            rows_before=state.rows,
            bytes_before=state.bytes,
            format_state_before=state.format_state,
        )
        result = await self._produce_part(export, record)
        state.cursor = result.cursor
        state.rows += result.rows
        state.bytes += result.bytes
        state.format_state = result.format_state
        for kind, count in result.warnings.items():
            state.warnings[kind] = state.warnings.get(kind, 0) + count
        state.parts_done = result.part_number
        state.next_part_number = result.part_number + 1
        if self._bounded:
            record = record.model_copy(update={"etag": result.etag, "rows": result.rows})
            state.unverified_parts.append(record)
        self._publish_progress()
        await self._report_to_parent(export)
        if result.exhausted:
            self._set_status(ExportStatus.COMPLETING, "completing the upload")

    async def _produce_part(self, export: ExportInput, record: PartRecord) -> PartResult:
        """Part `record.number`, produced from where the record says it starts."""
        state = self._state
        assert state.object_key is not None
        assert state.upload_id is not None
        return await workflow.execute_activity_method(
            ExportActivities.upload_next_part,
            PartRequest(
                export=export,
                object_key=state.object_key,
                upload_id=state.upload_id,
                # Requested columns travel in `export` already: never twice in one payload.
                columns=None if state.columns == export.request.columns else state.columns,
                cursor=record.cursor_before,
                part_number=record.number,
                rows_so_far=record.rows_before,
                bytes_so_far=record.bytes_before,
                format_state=record.format_state_before,
            ),
            task_queue=activity_task_queue(),
            start_to_close_timeout=PART_TIMEOUT + self._policy.query_timeout,
            heartbeat_timeout=HEARTBEAT,
            retry_policy=retry_policy(self._policy),
            # On cancellation the workflow does not wait for this part (TRY_CANCEL): the abort
            # that follows repeats until ListParts shows nothing, so a part landing late is
            # removed too, and one uploaded after the abort is refused with NoSuchUpload.
        )

    async def _finish(self, export: ExportInput) -> None:
        """Complete the upload (again, harmlessly, if an unanswered call already did) and tell
        the owner."""
        state = self._state
        assert state.object_key is not None
        if state.partitions and state.status != ExportStatus.COMPLETED:
            await self._compose(export)
            state.finished_at = workflow.now()
            self._set_status(ExportStatus.COMPLETED, f"{state.rows} rows, {state.bytes} bytes")
        assert state.upload_id is not None or state.partitions
        if state.status != ExportStatus.COMPLETED:
            assert state.upload_id is not None
            if self._bounded:
                await self._verify_parts(export, complete=True)
            else:
                await workflow.execute_activity_method(
                    ExportActivities.complete_upload,
                    CompleteRequest(
                        object_key=state.object_key,
                        upload_id=state.upload_id,
                        parts=state.parts_done,
                    ),
                    task_queue=activity_task_queue(),
                    start_to_close_timeout=SHORT,
                    heartbeat_timeout=HEARTBEAT,
                    retry_policy=retry_policy(self._policy),
                )
            state.unverified_parts = []
            state.finished_at = workflow.now()
            self._set_status(ExportStatus.COMPLETED, f"{state.rows} rows, {state.bytes} bytes")
        await self._notify(export)

    async def _verify_parts(self, export: ExportInput, *, complete: bool) -> None:
        """Fence the parts: S3 must hold, for each part written since the last check, the bytes
        the workflow accepted. A part overwritten by an attempt that outlived its timeout is
        produced again from its record; then the upload is completed (if `complete`)."""
        state = self._state
        assert state.object_key is not None
        assert state.upload_id is not None
        for _ in range(REPAIR_ROUNDS):
            checked = await workflow.execute_activity_method(
                ExportActivities.verify_and_complete,
                CompleteRequest(
                    object_key=state.object_key,
                    upload_id=state.upload_id,
                    parts=state.parts_done,
                    expected_etags={r.number: r.etag for r in state.unverified_parts},
                    complete=complete,
                ),
                task_queue=activity_task_queue(),
                start_to_close_timeout=SHORT,
                heartbeat_timeout=HEARTBEAT,
                retry_policy=retry_policy(self._policy),
            )
            if not checked.overwritten:
                return
            for number in checked.overwritten:
                await self._repair(export, number)
        raise ApplicationError(
            f"parts kept being overwritten by attempts that outlived their timeouts after "
            f"{REPAIR_ROUNDS} repairs",
            type="PartOverwritten",
            non_retryable=True,
        )

    async def _repair(self, export: ExportInput, number: int) -> None:
        state = self._state
        index = next(i for i, r in enumerate(state.unverified_parts) if r.number == number)
        record = state.unverified_parts[index]
        workflow.logger.warning(
            "part %d was overwritten by a late attempt: writing it again", number
        )
        result = await self._produce_part(export, record)
        following = state.unverified_parts[index + 1 : index + 2]
        end = following[0].cursor_before if following else state.cursor
        if result.rows != record.rows or result.cursor != end:
            raise ApplicationError(
                f"part {number} was overwritten by an attempt that outlived its timeout, and the "
                "source changed since, so it cannot be written again with the same rows; run "
                "the export again",
                type="PartOverwritten",
                non_retryable=True,
            )
        state.unverified_parts[index] = record.model_copy(update={"etag": result.etag})

    def _too_late_to_stop(self) -> bool:
        return self._state.status in (ExportStatus.COMPLETING, ExportStatus.COMPLETED)

    def _time_left(self) -> float:
        """Seconds until the export's deadline (negative once it has passed)."""
        started = self._state.started_at or workflow.now()
        elapsed = (workflow.now() - started).total_seconds()
        return self._policy.export_deadline_seconds - elapsed

    # -- on failure or cancellation ------------------------------------------------------------

    async def _compensate(self, export: ExportInput, message: str, *, cancelled: bool) -> None:
        """Abort the upload and tell the owner. Runs even when the workflow is being cancelled."""
        state = self._state
        state.error = message
        state.finished_at = workflow.now()
        self._set_status(ExportStatus.CANCELLED if cancelled else ExportStatus.FAILED, message)
        started_unanswered = self._bounded and self._upload_started and state.upload_id is None
        if state.object_key is not None and (state.upload_id is not None or started_unanswered):
            # The cancellation was delivered (and caught) already: this activity runs normally.
            await workflow.execute_activity_method(
                ExportActivities.abort_upload,
                AbortRequest(object_key=state.object_key, upload_id=state.upload_id),
                task_queue=activity_task_queue(),
                start_to_close_timeout=SHORT,
                heartbeat_timeout=HEARTBEAT,
                retry_policy=retry_policy(self._policy, at_least=20),
            )
        if state.partitions:
            await self._discard_partitions(export)
        await self._notify(export)

    async def _notify(self, export: ExportInput) -> None:
        state = self._state
        if export.partition is not None:
            return  # the parent tells the owner
        outcome = Outcome(
            export=export,
            status=state.status,
            object_key=state.object_key,
            filename=state.filename,
            rows=state.rows,
            bytes=state.bytes,
            error=state.error,
        )
        if not self._bounded:
            await self._notify_all_in_one(outcome)
            return
        workflow.logger.info("export %s ended %s", export.export_id, state.status.value)
        notify = export.request.notify
        channels: list[Channel] = ["operator_webhook", "email"]
        if notify is not None and notify.webhook_url:
            channels.insert(0, "request_webhook")
        pending = [channel for channel in channels if channel not in self._notified]
        results = await asyncio.gather(
            *(self._notify_channel(outcome, channel) for channel in pending),
            return_exceptions=True,
        )
        for channel, result in zip(pending, results, strict=True):
            if isinstance(result, BaseException):
                workflow.logger.warning(
                    "could not notify export %s through %s: %s", export.export_id, channel, result
                )
            else:
                self._notified.add(channel)

    async def _notify_channel(self, outcome: Outcome, channel: Channel) -> None:
        await workflow.execute_activity_method(
            NotifyActivities.notify_channel,
            ChannelNotice(outcome=outcome, channel=channel),
            task_queue=activity_task_queue(),
            start_to_close_timeout=timedelta(minutes=1),
            retry_policy=NOTIFY_RETRY,
        )

    async def _notify_all_in_one(self, outcome: Outcome) -> None:
        """How exports recorded before one activity per channel notified (replay only)."""
        try:
            await workflow.execute_activity_method(
                NotifyActivities.notify,
                outcome,
                task_queue=activity_task_queue(),
                start_to_close_timeout=timedelta(minutes=1),
                retry_policy=RetryPolicy(maximum_attempts=5, initial_interval=timedelta(seconds=2)),
            )
        except ActivityError:
            workflow.logger.warning(
                "could not notify the owner of export %s", outcome.export.export_id
            )

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
