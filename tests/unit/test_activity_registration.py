"""Every activity a workflow schedules is registered by the activity worker processes.

An activity that is scheduled but not registered leaves its task failing with NotFoundError on
every attempt (a notify channel did, once, after a merge): compare the names the workflows'
source schedules with what `all_activities` registers.
"""

from __future__ import annotations

import inspect
import re
from typing import Any

from temporalio import activity

from domain.settings import Settings
from workflows import export_workflow, janitor_workflow
from workflows.worker_processes import all_activities

SCHEDULED = re.compile(
    r"\b(?:ExportActivities|NotifyActivities|JanitorActivities|PartitionActivities)\.(\w+)"
)


def test_every_scheduled_activity_is_registered() -> None:
    source = inspect.getsource(export_workflow) + inspect.getsource(janitor_workflow)
    scheduled = set(SCHEDULED.findall(source))
    client: Any = None  # the janitor keeps it for later calls; nothing connects here
    registered = set()
    for function in all_activities(Settings(), client):
        definition = activity._Definition.from_callable(function)
        assert definition is not None
        assert definition.name is not None
        registered.add(definition.name)
    assert scheduled, "no scheduled activity found in the workflows' source"
    assert scheduled <= registered, f"scheduled but not registered: {scheduled - registered}"
