"""Record the histories of the parallel-export release (patch `parallel-partitions-1`) into
tests/histories/, for `tests/unit/test_replay.py`:

* `export_parallel_completed`: a CSV export in 2 partitions (the parent: plan, 2 children and
  their progress signals, compose, discard, notify);
* `export_parallel_partition`: partition 0 of it (a child: start, parts, signals, complete);
* `export_auto_serial`: an export whose `parallelism: auto` was decided serial.

Run against the local stack: `python -m tests.integration.record_histories`.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

from domain.models import Column, ExportRequest, ProgressView
from domain.settings import Settings
from tests.integration import export_harness as h
from tests.integration.test_export_workflow import documents

HISTORIES = Path(__file__).resolve().parents[1] / "histories"
COLLECTION = "record_parallel_histories"


async def record() -> None:
    settings = Settings(
        mongodb_uri=os.environ.get("SECOND_MONGODB_URI", "mongodb://127.0.0.1:27018/"),
        temporal_task_queue="record-parallel-histories",
    )
    h.drop(settings, COLLECTION)
    h.seed(settings, COLLECTION, documents(300))
    columns = [Column(path="_id"), Column(path="n"), Column(path="name")]
    try:
        async with h.in_process_worker(settings) as client:
            for stem, parallelism in (
                ("export_parallel_completed", 2),
                ("export_auto_serial", "auto"),
            ):
                export = h.new_export(
                    ExportRequest(collection=COLLECTION, columns=columns, parallelism=parallelism)
                )
                handle = await client.start_workflow(
                    "ExportWorkflow",
                    export,
                    id=export.export_id,
                    task_queue=settings.temporal_task_queue,
                    result_type=ProgressView,
                )
                await handle.result()
                history = await handle.fetch_history()
                (HISTORIES / f"{stem}.json").write_text(history.to_json())
                if parallelism == 2:
                    child = client.get_workflow_handle(f"{export.export_id}--partition-0")
                    history = await child.fetch_history()
                    (HISTORIES / "export_parallel_partition.json").write_text(history.to_json())
    finally:
        h.drop(settings, COLLECTION)


if __name__ == "__main__":
    asyncio.run(record())
