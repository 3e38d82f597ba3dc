"""`exportctl` against the API on a real port, with an in-process worker, on the live stack."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from domain.models import ExportInput, ExportRequest, Owner
from tests.api.support import Api, IdleApiFactory, new_owner
from tests.cli.conftest import Cli
from tests.integration import export_harness

pytestmark = pytest.mark.services

PIPELINE = '[{"$match": {"n": {"$gte": 0}}}]'
FILENAME = "Rapport été, 2024.csv"


def _documents(count: int) -> list[dict[str, Any]]:
    names = ["Ada", 'Quote "Q"', "a,b", "line\nbreak", "=SUM(A1)"]
    return [{"n": n, "name": names[n % len(names)], "city": "Paris"} for n in range(count)]


def _names(directory: Path) -> list[str]:
    return sorted(path.name for path in directory.iterdir())


async def test_start_wait_status_and_download(
    cli: Cli, api: Api, collection: str, tmp_path: Path
) -> None:
    owner = new_owner()
    export_harness.seed(api.settings, collection, _documents(120), tenant=owner.tenant)
    export_harness.seed(api.settings, collection, _documents(5), tenant="someone-else")

    started = await cli(
        "start",
        "--collection",
        collection,
        "--pipeline",
        PIPELINE,
        *("--column", "n", "--column", "name:Name", "--column", "city"),
        *("--filename", FILENAME, "--wait", "--interval", "0.2"),
        server=api,
        owner=owner,
    )

    assert started.code == 0, started.err
    export_id, result = started.out.splitlines()
    assert export_id.startswith("exp_")
    assert result.startswith("COMPLETED  120 rows")
    assert f"started export {export_id} (PENDING)" in started.err
    assert "COMPLETED" in started.err  # the progress bar's last state

    status = await cli("status", export_id, server=api, owner=owner)
    assert status.code == 0, status.err
    assert "COMPLETED" in status.out
    assert "120" in status.out
    assert "Download" in status.out
    as_json = await cli("status", export_id, "--json", server=api, owner=owner)
    view = json.loads(as_json.out)
    assert view["status"] == "COMPLETED"
    assert view["rows"] == 120

    downloaded = await cli(
        "download", export_id, "--output", str(tmp_path), server=api, owner=owner
    )

    assert downloaded.code == 0, downloaded.err
    target = tmp_path / FILENAME
    assert downloaded.out.strip() == f"{target}  {view['bytes']:,} bytes"
    request = ExportRequest.model_validate(
        {
            "collection": collection,
            "pipeline": json.loads(PIPELINE),
            "columns": [{"path": "n"}, {"path": "name", "header": "Name"}, {"path": "city"}],
            "filename": FILENAME,
        }
    )
    export = ExportInput(
        export_id=export_id, owner=owner, request=request, requested_at=datetime.now(UTC)
    )
    assert target.read_bytes() == export_harness.reference_bytes(
        api.settings, export, request.columns
    )
    assert _names(tmp_path) == [FILENAME]  # no partial file left


async def _until_listed(cli: Cli, api: Api, owner: Owner, ids: set[str]) -> None:
    """Temporal's visibility store indexes a new workflow a moment after it starts."""
    async with asyncio.timeout(30):
        while True:
            listed = await cli("list", "--json", server=api, owner=owner)
            if {item["export_id"] for item in json.loads(listed.out)["items"]} == ids:
                return
            await asyncio.sleep(0.2)


async def test_list_pages_cancel_and_conflicts(cli: Cli, idle_api: IdleApiFactory) -> None:
    api = idle_api()  # no worker: the exports stay PENDING
    owner = new_owner()
    ids = []
    for _ in range(2):
        started = await cli("start", "--collection", "nothing", server=api, owner=owner)
        assert started.code == 0, started.err
        assert f"follow it with: exportctl watch {started.out.strip()}" in started.err
        ids.append(started.out.strip())

    await _until_listed(cli, api, owner, set(ids))
    first = await cli("list", "--limit", "1", server=api, owner=owner)
    assert first.code == 0, first.err
    assert ids[1] in first.out
    assert ids[0] not in first.out
    assert "PENDING" in first.out
    token = first.out.split("next page: --page-token ", 1)[1].strip()
    second = await cli(
        "list", "--limit", "1", "--page-token", token, "--json", server=api, owner=owner
    )
    assert [item["export_id"] for item in json.loads(second.out)["items"]] == [ids[0]]

    not_ready = await cli("download", ids[0], server=api, owner=owner)
    assert not_ready.code == 4
    assert "409 not_complete" in not_ready.err

    cancelled = await cli("cancel", ids[0], server=api, owner=owner)
    assert cancelled.code == 0, cancelled.err
    assert f"cancel requested for export {ids[0]} (it was PENDING)" in cancelled.out

    someone_else = await cli("cancel", ids[1], server=api, owner=new_owner())
    assert someone_else.code == 3
    assert "404 not_found" in someone_else.err


async def test_explain_prints_the_strategy_and_the_first_chunk(cli: Cli, api: Api) -> None:
    owner = new_owner()
    args = ["explain", "--collection", "orders", "--pipeline", '[{"$match": {"paid": true}}]']

    explained = await cli(*args, server=api, owner=owner)
    as_json = await cli(*args, "--json", server=api, owner=owner)

    assert explained.code == 0, explained.err
    assert explained.out.startswith("strategy: ")
    assert "first chunk's pipeline:" in explained.out
    pipeline = json.loads(explained.out.split("first chunk's pipeline:\n", 1)[1])
    assert pipeline[0] == {"$match": {api.settings.tenant_field: owner.tenant}}
    assert {"$match": {"paid": True}} in pipeline
    assert json.loads(as_json.out)["pipeline"] == pipeline


async def test_explain_knows_the_parquet_format(cli: Cli, api: Api) -> None:
    args = ["explain", "--collection", "orders", "--format", "parquet"]
    explained = await cli(*args, server=api, owner=new_owner())
    as_json = await cli(*args, "--json", server=api, owner=new_owner())

    assert explained.code == 0, explained.err
    assert "format: parquet (application/vnd.apache.parquet)" in explained.out
    assert json.loads(as_json.out)["format"] == "parquet"


async def test_a_refused_pipeline_prints_the_api_error(cli: Cli, api: Api, tmp_path: Path) -> None:
    pipeline = tmp_path / "pipeline.json"
    pipeline.write_text('[{"$match": {}}, {"$out": "stolen"}]')

    refused = await cli(
        "start",
        "--collection",
        "orders",
        "--pipeline-file",
        str(pipeline),
        server=api,
        owner=new_owner(),
    )

    assert refused.code == 4
    assert refused.out == ""
    first, *details = refused.err.splitlines()
    assert first.startswith("exportctl: error: 422 pipeline_refused: pipeline[1]")
    assert any(line.startswith("  path: pipeline[1]") for line in details)
    assert any(line.startswith("  reason: ") for line in details)


async def test_an_invalid_request_lists_each_invalid_field(cli: Cli, api: Api) -> None:
    invalid = await cli(
        "explain", "--collection", "bad name!", "--email", "x", server=api, owner=new_owner()
    )
    assert invalid.code == 2  # --email is not an option of explain
    refused = await cli("explain", "--collection", "bad name!", server=api, owner=new_owner())
    assert refused.code == 4
    assert "422 invalid_request" in refused.err
    assert "  body.collection: " in refused.err


async def test_unknown_export_exits_3(cli: Cli, api: Api) -> None:
    result = await cli("status", f"exp_{'0' * 32}", server=api, owner=new_owner())
    assert result.code == 3
    assert "404 not_found" in result.err


async def test_connection_options_may_follow_the_command(cli: Cli, api: Api) -> None:
    owner = new_owner()
    token = api.headers(owner)["Authorization"].removeprefix("Bearer ")

    result = await cli("list", "--api-url", api.url, "--token", token)

    assert result.code == 0, result.err
    assert result.out.strip() == "no exports"


async def test_without_a_token_a_development_token_is_minted(
    cli: Cli, api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("API_JWT_SECRET", api.settings.api_jwt_secret)

    result = await cli("list", "--sub", "alice", "--tenant", "acme", server=api)

    assert result.code == 0, result.err
    assert "using a development token for 'alice' in tenant 'acme'" in result.err
    assert "signed with API_JWT_SECRET" in result.err


async def test_without_any_token_the_401_comes_with_a_hint(
    cli: Cli, api: Api, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("API_JWT_SECRET", raising=False)
    monkeypatch.setenv("DEVSTACK_DIR", str(tmp_path))  # no env file there

    result = await cli("list", server=api)

    assert result.code == 4
    assert "401 unauthorized: missing bearer token" in result.err
    assert "hint: pass --token or set EXPORTCTL_TOKEN" in result.err
