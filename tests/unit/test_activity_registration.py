"""Every activity a workflow schedules is registered by the activity worker processes.

An activity that is scheduled but not registered leaves its task failing with NotFoundError on
every attempt (a notify channel did, once, after a merge): compare the names the workflows'
source schedules with what `all_activities` registers, with either activity executor.
"""

from __future__ import annotations

import inspect
import pickle
import re
from typing import Any

import pytest
from temporalio import activity

from domain.settings import Settings
from workflows import activity_pool, export_workflow, janitor_workflow
from workflows.worker_processes import ActivityExecutor, all_activities

SCHEDULED = re.compile(
    r"\b(?:ExportActivities|NotifyActivities|JanitorActivities|PartitionActivities)\.(\w+)"
)


def _definitions(executor: ActivityExecutor) -> dict[str, activity._Definition]:
    client: Any = None  # the janitor keeps it for later calls; nothing connects here
    found = {}
    for function in all_activities(Settings(), client, executor):
        definition = activity._Definition.from_callable(function)
        assert definition is not None
        assert definition.name is not None
        found[definition.name] = definition
    return found


@pytest.mark.parametrize("executor", ["threads", "processes"])
def test_every_scheduled_activity_is_registered(executor: ActivityExecutor) -> None:
    source = inspect.getsource(export_workflow) + inspect.getsource(janitor_workflow)
    scheduled = set(SCHEDULED.findall(source))
    registered = set(_definitions(executor))
    assert scheduled, "no scheduled activity found in the workflows' source"
    assert scheduled <= registered, f"scheduled but not registered: {scheduled - registered}"


def test_the_pooled_activities_stand_for_the_threaded_ones() -> None:
    """Same names, same kinds and the same argument and result types: a workflow cannot tell
    which executor ran its activity (the data converter decodes by these types)."""
    threaded = _definitions("threads")
    pooled = _definitions("processes")
    assert set(pooled) == set(threaded)
    for name, definition in threaded.items():
        twin = pooled[name]
        assert twin.is_async == definition.is_async, name
        assert twin.arg_types == definition.arg_types, name
        assert twin.ret_type == definition.ret_type, name
    sync = {name for name, d in pooled.items() if not d.is_async}
    assert sync == {pickle.loads(pickle.dumps(f)).__name__ for f in activity_pool.POOLED}
