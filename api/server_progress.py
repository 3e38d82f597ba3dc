"""An export's progress from what the Temporal server holds, without asking any worker.

ExportWorkflow publishes its counters to its memo (`ProgressMemo`) at every status change and
after every part; the part being written heartbeats `(part_number, rows read so far)`, which
`describe()` returns among the pending activities. Both come back in the one describe call the
API makes anyway (for the ownership check), so a status request costs one RPC to the server and
answers the same whether the workers are idle, busy or all stopped.
"""

from __future__ import annotations

from datetime import UTC, datetime

from temporalio.client import WorkflowExecutionDescription, WorkflowExecutionStatus
from temporalio.exceptions import TemporalError

from domain.models import PROGRESS_MEMO_KEY, ExportStatus, ProgressMemo, ProgressView

PART_ACTIVITY = "upload_next_part"


async def progress_memo(description: WorkflowExecutionDescription) -> ProgressMemo | None:
    """The progress the workflow last published; None for a run that has not published yet
    (started by a version without the memo, or not yet given its first workflow task)."""
    try:
        value = await description.memo_value(PROGRESS_MEMO_KEY, None, type_hint=ProgressMemo)
    except (TemporalError, ValueError, TypeError):
        return None
    return value if isinstance(value, ProgressMemo) else None


async def rows_in_flight(description: WorkflowExecutionDescription, next_part: int) -> int:
    """Rows the part being written has read so far, from its activity's last heartbeat."""
    for pending in description.raw_description.pending_activities:
        if pending.activity_type.name != PART_ACTIVITY or not pending.heartbeat_details.payloads:
            continue
        try:
            details = await description.data_converter.decode(
                pending.heartbeat_details.payloads, [int, int]
            )
        except (TemporalError, ValueError, TypeError):
            continue
        if len(details) == 2 and details[0] == next_part and isinstance(details[1], int):
            return max(details[1], 0)
    return 0


def closed_status(description: WorkflowExecutionDescription) -> ExportStatus | None:
    """The final status of a closed execution (a terminated run never published one)."""
    match description.status:
        case WorkflowExecutionStatus.COMPLETED:
            return ExportStatus.COMPLETED
        case WorkflowExecutionStatus.CANCELED:
            return ExportStatus.CANCELLED
        case WorkflowExecutionStatus.RUNNING | WorkflowExecutionStatus.CONTINUED_AS_NEW | None:
            return None
        case _:
            return ExportStatus.FAILED


async def progress_from_server(
    description: WorkflowExecutionDescription, now: datetime | None = None
) -> ProgressView | None:
    """The export's progress from its memo and pending heartbeat; None without a memo."""
    memo = await progress_memo(description)
    if memo is None:
        return None
    in_flight = 0
    if description.status == WorkflowExecutionStatus.RUNNING and memo.status in (
        ExportStatus.RUNNING,
        ExportStatus.PENDING,
    ):
        in_flight = await rows_in_flight(description, memo.parts_done + 1)
    final = closed_status(description)
    if final is not None and final != memo.status:
        memo = memo.model_copy(
            update={"status": final, "finished_at": memo.finished_at or description.close_time}
        )
    return memo.view(description.id, now or datetime.now(UTC), rows_in_flight=in_flight)
