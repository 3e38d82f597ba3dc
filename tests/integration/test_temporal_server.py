"""The Temporal dev server runs a workflow and its activity through a real worker."""

from __future__ import annotations

import os
from datetime import timedelta

from temporalio import activity, workflow
from temporalio.client import Client
from temporalio.worker import Worker


@activity.defn
async def shout(text: str) -> str:
    return text.upper() + "!"


@workflow.defn
class ShoutWorkflow:
    @workflow.run
    async def run(self, text: str) -> str:
        return await workflow.execute_activity(
            shout, text, start_to_close_timeout=timedelta(seconds=10)
        )


async def test_a_workflow_runs_its_activity_on_a_real_worker(unique_name: str) -> None:
    client = await Client.connect(os.environ.get("TEMPORAL_ADDRESS", "127.0.0.1:7233"))
    async with Worker(
        client, task_queue=unique_name, workflows=[ShoutWorkflow], activities=[shout]
    ):
        result = await client.execute_workflow(
            ShoutWorkflow.run, "durable", id=f"smoke-{unique_name}", task_queue=unique_name
        )
    assert result == "DURABLE!"
    described = await client.get_workflow_handle(f"smoke-{unique_name}").describe()
    assert described.status is not None
    assert described.status.name == "COMPLETED"


async def test_the_search_attributes_the_api_lists_by_are_registered() -> None:
    client = await Client.connect(os.environ.get("TEMPORAL_ADDRESS", "127.0.0.1:7233"))
    from temporalio.api.operatorservice.v1 import ListSearchAttributesRequest

    response = await client.operator_service.list_search_attributes(
        ListSearchAttributesRequest(namespace=client.namespace)
    )
    assert {"ExportOwner", "ExportTenant", "ExportStatus"} <= set(response.custom_attributes)
