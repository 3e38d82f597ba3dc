"""Recorded histories replay through the current ExportWorkflow without non-determinism.

The histories in tests/histories/ were recorded from real runs on the local Temporal server (a
completed export and one refused at planning), for each version of the workflow: the first
version; the version that publishes its progress to the memo (patch `progress-memo`, with
activities on their own task queue); the version that bounds failures (patch
`bounded-failures-1`); the release with both (`export_completed_bounded_memo`); and the release
of parallel exports (patch `parallel-partitions-1`): a parent of 2 partitions
(`export_parallel_completed`), one of its partitions, a child workflow
(`export_parallel_partition`), and an export whose `parallelism: auto` stayed serial
(`export_auto_serial`); `python -m tests.integration.record_histories` records these three.
A change to the workflow that would break running exports on deployment fails here. Keep every recorded version; add one for each deliberate, versioned change.

`scheduled_export_run` is one run of a recurring export (issue 17): `ScheduledExportWorkflow`
starting its export as a child workflow, whose id derives from the run's workflow id (so it
replays under the recorded id).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from temporalio.client import WorkflowHistory
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.worker import Replayer

from workflows.task_queues import activity_task_queue_for
from workflows.worker_processes import ALL_WORKFLOWS

HISTORY_DIR = Path(__file__).parent.parent / "histories"
HISTORIES = sorted(HISTORY_DIR.glob("*.json"))
HISTORY_TEXT = {path: path.read_text() for path in HISTORIES}


@pytest.mark.parametrize("path", HISTORIES, ids=[p.stem for p in HISTORIES])
async def test_recorded_history_replays(path: Path) -> None:
    started = json.loads(HISTORY_TEXT[path])["events"][0]["workflowExecutionStartedEventAttributes"]
    history = WorkflowHistory.from_json(started.get("workflowId", path.stem), HISTORY_TEXT[path])
    replayer = Replayer(workflows=ALL_WORKFLOWS, data_converter=pydantic_data_converter)
    result = await replayer.replay_workflow(history, raise_on_replay_failure=True)
    assert result.replay_failure is None


def test_both_recorded_outcomes_of_each_version_are_present() -> None:
    assert [p.stem for p in HISTORIES] == [
        "export_auto_serial",
        "export_completed",
        "export_completed_bounded",
        "export_completed_bounded_memo",
        "export_completed_progress_memo",
        "export_parallel_completed",
        "export_parallel_partition",
        "export_refused",
        "export_refused_progress_memo",
        "scheduled_export_run",
    ]


@pytest.mark.parametrize("stem", ["export_completed_progress_memo", "export_refused_progress_memo"])
def test_the_new_version_publishes_progress_and_schedules_activities_on_their_own_queue(
    stem: str,
) -> None:
    """The newer recordings really are of the patched version (else they test nothing new)."""
    events = json.loads(HISTORY_TEXT[HISTORY_DIR / f"{stem}.json"])["events"]
    kinds = [event["eventType"] for event in events]
    assert "EVENT_TYPE_MARKER_RECORDED" in kinds
    assert "EVENT_TYPE_WORKFLOW_PROPERTIES_MODIFIED" in kinds
    workflow_queue = events[0]["workflowExecutionStartedEventAttributes"]["taskQueue"]["name"]
    queues = {
        event["activityTaskScheduledEventAttributes"]["taskQueue"]["name"]
        for event in events
        if event["eventType"] == "EVENT_TYPE_ACTIVITY_TASK_SCHEDULED"
    }
    assert queues == {activity_task_queue_for(workflow_queue)}


def test_the_parallel_recordings_are_of_the_partitioned_version() -> None:
    """The parent starts two child workflows and hears from them; the child signals it; the
    serial one asked how to partition (the patch marker and the `plan_partitions` activity)."""

    def events(stem: str) -> list[dict[str, object]]:
        loaded: list[dict[str, object]] = json.loads(HISTORY_TEXT[HISTORY_DIR / f"{stem}.json"])[
            "events"
        ]
        return loaded

    def kinds(stem: str) -> list[object]:
        return [event["eventType"] for event in events(stem)]

    def activities(stem: str) -> set[str]:
        return {
            str(event["activityTaskScheduledEventAttributes"]["activityType"]["name"])  # type: ignore[index]
            for event in events(stem)
            if event["eventType"] == "EVENT_TYPE_ACTIVITY_TASK_SCHEDULED"
        }

    parent = kinds("export_parallel_completed")
    assert parent.count("EVENT_TYPE_CHILD_WORKFLOW_EXECUTION_COMPLETED") == 2
    assert "EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED" in parent
    assert {"plan_partitions", "compose_partitions", "discard_partitions"} <= activities(
        "export_parallel_completed"
    )
    assert "EVENT_TYPE_SIGNAL_EXTERNAL_WORKFLOW_EXECUTION_INITIATED" in kinds(
        "export_parallel_partition"
    )
    assert "plan_partitions" in activities("export_auto_serial")
    assert "upload_next_part" in activities("export_auto_serial")
