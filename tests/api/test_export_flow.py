"""From `POST /exports` to the downloaded file, over HTTP, on the live stack."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from temporalio.client import Client, WorkflowExecutionStatus

from domain.models import ExportInput, ExportRequest, ExportStatus, Owner
from domain.objects import content_disposition
from tests.api.support import Api, IdleApiFactory, new_owner, wait_for_export
from tests.integration import export_harness

pytestmark = pytest.mark.services

TENANT = "tenant b-2024 (eu)"  # spaces and punctuation in visibility literals (no slash)
COLUMNS = [{"path": "n"}, {"path": "name", "header": "Name"}, {"path": "city"}]
FILENAME = "Rapport été, 2024.csv"


def _documents(count: int) -> list[dict[str, Any]]:
    names = ["Ada", 'Quote "Q"', "a,b", "line\nbreak", "=SUM(A1)"]
    return [
        {"n": n, "name": names[n % len(names)], "city": ["Paris", "Oslo"][n % 2]}
        for n in range(count)
    ]


def _body(collection: str, **extra: Any) -> dict[str, Any]:
    return {
        "collection": collection,
        "pipeline": [{"$match": {"n": {"$gte": 0}}}],
        "columns": COLUMNS,
        **extra,
    }


def _reference(api: Api, owner: Owner, export_id: str, body: dict[str, Any]) -> bytes:
    request = ExportRequest.model_validate(body)
    export = ExportInput(
        export_id=export_id, owner=owner, request=request, requested_at=datetime.now(UTC)
    )
    return export_harness.reference_bytes(api.settings, export, request.columns)


async def test_export_end_to_end_over_http(
    api: Api, http: httpx.AsyncClient, collection: str, temporal: Client
) -> None:
    owner = new_owner(TENANT)
    export_harness.seed(api.settings, collection, _documents(120), tenant=TENANT)
    export_harness.seed(api.settings, collection, _documents(7), tenant="someone-else")
    body = _body(collection, filename=FILENAME)

    started = await http.post(f"{api.url}/exports", json=body, headers=api.headers(owner))

    assert started.status_code == 202, started.text
    accepted = started.json()
    export_id = accepted["export_id"]
    assert export_id.startswith("exp_")
    assert accepted["status"] == "PENDING"
    assert accepted["strategy"]
    assert accepted["status_url"].endswith(f"/exports/{export_id}")
    assert started.headers["Location"] == accepted["status_url"]

    view = await wait_for_export(
        http, api, owner, export_id, lambda v: ExportStatus(v["status"]).is_terminal
    )
    assert view["status"] == "COMPLETED", view
    assert view["rows"] == 120
    assert view["parts"] == 1
    assert view["bytes"] > 0
    assert view["started_at"]
    assert view["finished_at"]
    assert view["download_url"]
    assert view["download_expires_at"]

    downloaded = await http.get(view["download_url"])
    assert downloaded.status_code == 200
    assert downloaded.content == _reference(api, owner, export_id, body)
    assert downloaded.headers["Content-Disposition"] == content_disposition(FILENAME)
    assert len(downloaded.content) == view["bytes"]

    redirect = await http.get(f"{api.url}/exports/{export_id}/download", headers=api.headers(owner))
    assert redirect.status_code == 302
    assert redirect.headers["Cache-Control"] == "no-store"
    again = await http.get(redirect.headers["Location"])
    assert again.content == downloaded.content

    listed = await http.get(f"{api.url}/exports", headers=api.headers(owner))
    assert listed.status_code == 200
    assert [item["export_id"] for item in listed.json()["items"]] == [export_id]
    assert listed.json()["items"][0]["status"] == "COMPLETED"

    description = await temporal.get_workflow_handle(export_id).describe()
    assert description.status == WorkflowExecutionStatus.COMPLETED


async def test_a_completed_export_is_shown_without_a_worker(
    api: Api, idle_api: IdleApiFactory, http: httpx.AsyncClient, collection: str
) -> None:
    """The progress of a completed export is its result in history: no worker needed."""
    owner = new_owner()
    export_harness.seed(api.settings, collection, _documents(3), tenant=owner.tenant)
    started = await http.post(
        f"{api.url}/exports", json=_body(collection), headers=api.headers(owner)
    )
    export_id = started.json()["export_id"]
    await wait_for_export(http, api, owner, export_id, lambda v: v["status"] == "COMPLETED")

    # Another app process, whose task queue no worker polls, reads the same export.
    other = idle_api()
    view = (await http.get(f"{other.url}/exports/{export_id}", headers=other.headers(owner))).json()

    assert view["status"] == "COMPLETED"
    assert view["rows"] == 3
    assert view["download_url"]


async def test_a_pending_export_answers_from_the_server_when_no_worker_polls(
    idle_api: IdleApiFactory, http: httpx.AsyncClient
) -> None:
    api = idle_api()
    owner = new_owner()
    started = await http.post(
        f"{api.url}/exports", json=_body("nothing"), headers=api.headers(owner)
    )
    export_id = started.json()["export_id"]

    response = await http.get(f"{api.url}/exports/{export_id}", headers=api.headers(owner))

    assert response.status_code == 200
    view = response.json()
    assert view["status"] == "PENDING"
    assert view["rows"] == 0
    assert view["started_at"]
    assert view["download_url"] is None


async def test_cancel_via_delete_ends_cancelled(
    idle_api: IdleApiFactory, http: httpx.AsyncClient
) -> None:
    """Cancel while PENDING (no worker), then let a worker run: the workflow's compensation
    reports CANCELLED, and a second DELETE is a conflict."""
    api = idle_api()
    owner = new_owner()
    started = await http.post(
        f"{api.url}/exports", json=_body("nothing"), headers=api.headers(owner)
    )
    export_id = started.json()["export_id"]

    cancelled = await http.delete(f"{api.url}/exports/{export_id}", headers=api.headers(owner))

    assert cancelled.status_code == 202, cancelled.text
    assert cancelled.json() == {
        "export_id": export_id,
        "status": "PENDING",
        "cancel_requested": True,
    }
    async with export_harness.in_process_worker(api.settings):
        view = await wait_for_export(
            http, api, owner, export_id, lambda v: ExportStatus(v["status"]).is_terminal
        )
        assert view["status"] == "CANCELLED"
        assert view["error"]
        assert view["download_url"] is None
        again = await http.delete(f"{api.url}/exports/{export_id}", headers=api.headers(owner))
    assert again.status_code == 409
    assert again.json()["error"]["code"] == "already_finished"


async def test_explain_plans_without_starting(
    api: Api, http: httpx.AsyncClient, temporal: Client
) -> None:
    owner = new_owner()
    body = _body("orders")
    response = await http.post(f"{api.url}/exports/explain", json=body, headers=api.headers(owner))

    assert response.status_code == 200, response.text
    explained = response.json()
    assert explained["strategy"]
    assert explained["explanation"]
    stages = explained["pipeline"]
    assert stages[0] == {"$match": {api.settings.tenant_field: owner.tenant}}
    assert {"$match": {"n": {"$gte": 0}}} in stages
    listed = await http.get(f"{api.url}/exports", headers=api.headers(owner))
    assert listed.json()["items"] == []


async def test_explain_describes_the_csv_options_and_refuses_unknown_zones(
    api: Api, http: httpx.AsyncClient
) -> None:
    owner = new_owner()
    body = {**_body("orders"), "csv_preset": "spreadsheet_semicolon", "timezone": "Europe/Paris"}
    response = await http.post(f"{api.url}/exports/explain", json=body, headers=api.headers(owner))
    assert response.status_code == 200, response.text
    assert response.json()["output"].startswith(
        "CSV (.csv): ';' between cells, UTF-8 with a BOM, dates in Europe/Paris with their offset"
    )
    refused = await http.post(
        f"{api.url}/exports/explain",
        json={**_body("orders"), "timezone": "Mars/Olympus"},
        headers=api.headers(owner),
    )
    assert refused.status_code == 422
    assert "Mars/Olympus" in refused.text


async def test_list_pages_newest_first(idle_api: IdleApiFactory, http: httpx.AsyncClient) -> None:
    api = idle_api(max_running_exports_per_user=10)
    owner = new_owner()
    ids = []
    for _ in range(3):
        started = await http.post(
            f"{api.url}/exports", json=_body("nothing"), headers=api.headers(owner)
        )
        ids.append(started.json()["export_id"])

    seen: list[str] = []
    token = None
    for _ in range(3):
        params: dict[str, str | int] = {"limit": 2}
        if token:
            params["page_token"] = token
        page = await http.get(f"{api.url}/exports", params=params, headers=api.headers(owner))
        assert page.status_code == 200, page.text
        seen += [item["export_id"] for item in page.json()["items"]]
        token = page.json()["next_page_token"]
        if token is None:
            break

    assert seen == ids[::-1]


async def test_metrics_count_requests_by_route_template(api: Api, http: httpx.AsyncClient) -> None:
    owner = new_owner()
    await http.get(f"{api.url}/exports/exp_{'0' * 32}", headers=api.headers(owner))

    text = (await http.get(f"{api.url}/metrics")).text

    assert (
        'export_api_requests_total{method="GET",route="/exports/{export_id}",status="404"}' in text
    )
    assert "export_api_request_duration_seconds_bucket" in text
    assert "export_api_exports_started_total" in text
