"""Which task queue each kind of work runs on.

Workflow tasks (orchestration, light) run on `TEMPORAL_TASK_QUEUE`, the queue the API starts
exports on; activities (reading, encoding, uploading: CPU-heavy) run on a queue derived from it,
polled only by activity worker processes. The derivation is a pure function of the workflow's own
task queue, so it is deterministic in a workflow, survives continue-as-new, and needs no setting.
"""

from __future__ import annotations

from temporalio import workflow

ACTIVITY_QUEUE_SUFFIX = "-activities"


def activity_task_queue_for(workflow_task_queue: str) -> str:
    """The activities' task queue of workflows that run on `workflow_task_queue`."""
    return workflow_task_queue + ACTIVITY_QUEUE_SUFFIX


def activity_task_queue() -> str:
    """Inside a workflow: the task queue its activities go to. Every
    `workflow.execute_activity_method` call of this project passes `task_queue=` this."""
    return activity_task_queue_for(workflow.info().task_queue)
