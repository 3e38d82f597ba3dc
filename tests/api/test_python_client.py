"""`durable_export.client`, the importable Python client `exportctl` is built on, against the API
and a worker on the local stack: start (idempotent) → wait → download → the rows seeded; the
API's errors as `ExportApiError`; an unreachable API as `ExportConnectionError`."""

from __future__ import annotations

import asyncio
import csv
import io
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from domain.settings import Settings
from durable_export import ExportApiError, ExportClient, ExportConnectionError
from tests.api.support import Api, new_owner, serve
from tests.integration import export_harness as h

pytestmark = pytest.mark.services

NAMES = ["Ada", 'Quote "Q"', "a,b", "line\nbreak", "Zoë"]


@pytest.fixture
async def worker_api(api_settings: Settings) -> AsyncIterator[Api]:
    settings = api_settings.model_copy(
        update={"temporal_task_queue": f"py-client-{uuid.uuid4().hex[:8]}"}
    )
    async with h.in_process_worker(settings):
        with serve(settings) as api:
            yield api


@pytest.fixture
def source(api_settings: Settings, unique_name: str) -> Iterator[str]:
    yield unique_name
    h.drop(api_settings, unique_name)


def _token(api: Api, owner: Any) -> str:
    return api.headers(owner)["Authorization"].removeprefix("Bearer ")


async def test_start_wait_and_download_give_the_rows_seeded(
    worker_api: Api, source: str, tmp_path: Path
) -> None:
    owner = new_owner()
    docs = [{"_id": n, "name": NAMES[n % len(NAMES)]} for n in range(250)]
    h.seed(worker_api.settings, source, docs, tenant=owner.tenant)
    body = {"collection": source, "columns": [{"path": "_id"}, {"path": "name"}]}
    target = tmp_path / "export.csv"

    def use_the_client() -> tuple[str, str, dict[str, Any], int]:
        # The client is synchronous: it runs in a thread, beside the in-process worker's loop.
        with ExportClient(worker_api.url, _token(worker_api, owner)) as exports:
            key = str(uuid.uuid4())
            first = exports.start(body, idempotency_key=key)
            again = exports.start(body, idempotency_key=key)
            assert again.headers.get("Idempotent-Replayed") == "true"
            view = exports.wait_for_export(first.json()["export_id"], timeout=180)
            size = exports.download(view["export_id"], target)
            return first.json()["export_id"], again.json()["export_id"], view, size

    first_id, replayed_id, view, size = await asyncio.to_thread(use_the_client)
    assert replayed_id == first_id
    assert view["status"] == "COMPLETED", view
    content, leftovers = await asyncio.to_thread(
        lambda: (target.read_bytes(), list(tmp_path.glob(".*.part")))
    )
    assert size == len(content) == view["bytes"]
    assert leftovers == []
    rows = list(csv.reader(io.StringIO(content.decode("utf-8-sig"), newline="")))
    assert rows == [["_id", "name"]] + [[str(d["_id"]), str(d["name"])] for d in docs]


async def test_errors_carry_the_api_answer_or_say_the_api_is_unreachable(
    worker_api: Api,
) -> None:
    owner = new_owner()

    def calls() -> list[ExportApiError | ExportConnectionError]:
        seen: list[ExportApiError | ExportConnectionError] = []
        with ExportClient(worker_api.url, _token(worker_api, owner)) as exports:
            try:
                exports.get(f"exp_{uuid.uuid4().hex}")
            except ExportApiError as exc:
                seen.append(exc)
            try:
                exports.start({"collection": "orders", "pipeline": [{"$where": "1"}]})
            except ExportApiError as exc:
                seen.append(exc)
        with ExportClient(worker_api.url, "not-a-token") as stranger:
            try:
                stranger.list()
            except ExportApiError as exc:
                seen.append(exc)
        with ExportClient("http://127.0.0.1:9", None) as nowhere:
            try:
                nowhere.list()
            except ExportConnectionError as exc:
                seen.append(exc)
        return seen

    missing, refused, unauthorized, unreachable = await asyncio.to_thread(calls)
    assert isinstance(missing, ExportApiError)
    assert missing.status == 404
    assert isinstance(refused, ExportApiError)
    assert refused.status == 422
    assert refused.details
    assert "$where" in str(refused.details)
    assert isinstance(unauthorized, ExportApiError)
    assert unauthorized.status == 401
    assert isinstance(unreachable, ExportConnectionError)
    assert "cannot reach the API at http://127.0.0.1:9" in unreachable.message
