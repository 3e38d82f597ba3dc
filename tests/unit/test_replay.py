"""Recorded histories replay through the current ExportWorkflow without non-determinism.

The histories in tests/histories/ were recorded from real runs on the local Temporal server (a
completed export and one refused at planning, by the first release; a completed export by the
release that bounded failures, `export_completed_bounded`). A change to the workflow that would break running
exports on deployment fails here. Record afresh only for a deliberate, versioned change.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from temporalio.client import WorkflowHistory
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.worker import Replayer

from workflows.export_workflow import ExportWorkflow

HISTORIES = sorted((Path(__file__).parent.parent / "histories").glob("*.json"))
HISTORY_TEXT = {path: path.read_text() for path in HISTORIES}


@pytest.mark.parametrize("path", HISTORIES, ids=[p.stem for p in HISTORIES])
async def test_recorded_history_replays(path: Path) -> None:
    history = WorkflowHistory.from_json(path.stem, HISTORY_TEXT[path])
    replayer = Replayer(workflows=[ExportWorkflow], data_converter=pydantic_data_converter)
    result = await replayer.replay_workflow(history, raise_on_replay_failure=True)
    assert result.replay_failure is None


def test_every_recorded_version_is_present() -> None:
    """One history per workflow version that may still be running somewhere: before and
    after the `bounded-failures-1` patch."""
    assert [p.stem for p in HISTORIES] == [
        "export_completed",
        "export_completed_bounded",
        "export_refused",
    ]
