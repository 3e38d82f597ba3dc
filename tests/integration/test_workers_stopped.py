"""With every worker stopped mid-export, the API still answers status, list and cancel from the
Temporal server alone (the memo the workflow published, the heartbeat of the part in flight), and
the export completes byte-identical once workers return."""

from __future__ import annotations

import contextlib
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from connections.s3 import make_s3_client
from domain.models import ExportInput, ExportRequest
from domain.settings import Settings
from tests.api.support import Api, new_owner, serve, wait_for_export
from tests.integration import export_harness as h
from tests.integration.test_export_workflow import documents

pytestmark = [pytest.mark.services, pytest.mark.slow]

ROWS = 14_000
ANSWER_WITHIN_SECONDS = 1.0
"""The old status path waited 2 s for a worker's query answer; the server answers in ms."""


@pytest.fixture
def collection(settings: Settings, unique_name: str) -> Iterator[str]:
    yield unique_name
    h.drop(settings, unique_name)


@pytest.fixture
def isolated(settings: Settings, unique_name: str) -> Settings:
    return settings.model_copy(
        update={"temporal_task_queue": f"stopped-{unique_name}", "part_size_bytes": 5 * 2**20}
    )


async def _timed_get(http: httpx.AsyncClient, api: Api, path: str, **kw: Any) -> httpx.Response:
    began = time.monotonic()
    response = await http.get(f"{api.url}{path}", **kw)
    took = time.monotonic() - began
    assert took < ANSWER_WITHIN_SECONDS, f"GET {path} took {took:.2f} s with no worker running"
    return response


async def test_status_list_and_cancel_answer_with_every_worker_stopped(
    isolated: Settings, collection: str, tmp_path: Path
) -> None:
    h.seed(isolated, collection, documents(ROWS, pad=1500))  # about 4 parts of 5 MiB
    owner = new_owner(tenant=h.OWNER.tenant)
    body = {"collection": collection, "format": "jsonl"}
    log = tmp_path / "worker.log"
    with serve(isolated) as api:
        headers = api.headers(owner)
        async with httpx.AsyncClient(timeout=30) as http:
            kept, doomed = [
                (await http.post(f"{api.url}/exports", json=body, headers=headers)).json()[
                    "export_id"
                ]
                for _ in range(2)
            ]
            with contextlib.ExitStack() as workers:
                processes = [
                    workers.enter_context(h.worker_process(isolated, log, role))
                    for role in ("workflows", "activities")
                ]
                for export_id in (kept, doomed):
                    await wait_for_export(
                        http, api, owner, export_id, lambda v: v["parts"] >= 1, within=180
                    )
                for process in processes:
                    process.kill()  # every worker gone, mid-export
                    process.wait()

            # No worker runs now: status, list and cancel answer from the server, at once.
            view = (await _timed_get(http, api, f"/exports/{kept}", headers=headers)).json()
            assert view["status"] == "RUNNING"
            assert view["parts"] >= 1
            assert view["rows"] > 0
            assert view["bytes"] > 0
            assert view["strategy"]
            listed = (await _timed_get(http, api, "/exports", headers=headers)).json()
            assert {kept, doomed} <= {item["export_id"] for item in listed["items"]}
            began = time.monotonic()
            cancel = await http.delete(f"{api.url}/exports/{doomed}", headers=headers)
            assert cancel.status_code == 202, cancel.text
            assert time.monotonic() - began < ANSWER_WITHIN_SECONDS

            # Workers return: the kept export completes, the cancelled one compensates.
            with h.worker_process(isolated, log, "all"):
                done = await wait_for_export(
                    http, api, owner, kept, lambda v: v["status"] == "COMPLETED", within=300
                )
                ended = await wait_for_export(
                    http, api, owner, doomed, lambda v: v["status"] == "CANCELLED", within=120
                )

    assert done["rows"] == ROWS
    assert ended["error"]
    reference = h.reference_bytes(
        isolated,
        ExportInput(
            export_id=f"exp_{uuid.uuid4().hex}",
            owner=owner,
            request=ExportRequest.model_validate(body),
            requested_at=datetime.now(UTC),
        ),
        None,
    )
    prefix = f"{isolated.export_prefix}{owner.tenant}/"
    listed_objects = make_s3_client(isolated).list_objects_v2(
        Bucket=isolated.s3_bucket, Prefix=f"{prefix}{kept}/"
    )
    [key] = [item["Key"] for item in listed_objects.get("Contents", [])]
    assert h.fetch_object(isolated, key) == reference
    assert h.uploads_under(isolated, f"{prefix}{kept}/") == []
    assert h.uploads_under(isolated, f"{prefix}{doomed}/") == []
