"""`exportctl schedule …` against the API on a real port (the API tests' app and worker)."""

from __future__ import annotations

import json

import pytest

from tests.api.support import Api, eventually, new_owner
from tests.cli.conftest import Cli
from tests.integration import export_harness

pytestmark = pytest.mark.services


async def test_create_list_show_pause_resume_run_delete(
    cli: Cli, api: Api, collection: str
) -> None:
    owner = new_owner()
    export_harness.seed(
        api.settings, collection, [{"n": n} for n in range(10)], tenant=owner.tenant
    )
    created = await cli(
        "schedule",
        "create",
        *("--collection", collection, "--column", "n", "--filename", "daily.csv"),
        *("--cron", "0 7 * * *", "--schedule-timezone", "Europe/Paris"),
        server=api,
        owner=owner,
    )
    assert created.code == 0, created.err
    sid = created.out.strip()
    assert sid.startswith("sch_")
    assert "cron '0 7 * * *' (Europe/Paris)" in created.err

    listed = await eventually(  # the list comes from visibility, eventually consistent
        lambda: cli("schedule", "list", server=api, owner=owner), lambda r: sid in r.out
    )
    assert listed.code == 0
    assert "active" in listed.out

    paused = await cli("schedule", "pause", sid, server=api, owner=owner)
    assert paused.code == 0
    assert "PAUSED" in paused.out
    shown = await cli("schedule", "show", sid, "--json", server=api, owner=owner)
    assert json.loads(shown.out)["paused"] is True
    resumed = await cli("schedule", "resume", sid, server=api, owner=owner)
    assert "active" in resumed.out

    changed = await cli("schedule", "update", sid, "--every", "7200", server=api, owner=owner)
    assert changed.code == 0, changed.err
    assert "every 7200 s" in changed.out

    run = await cli("schedule", "run", sid, server=api, owner=owner)
    assert run.code == 0
    assert "a run starts now" in run.out
    await eventually(
        lambda: cli("schedule", "show", sid, "--json", server=api, owner=owner),
        lambda r: bool(json.loads(r.out)["recent_runs"]),
        within=120,
    )
    await eventually(  # the run's export is listed like any other
        lambda: cli("list", "--json", server=api, owner=owner),
        lambda r: len(json.loads(r.out)["items"]) == 1,
    )

    deleted = await cli("schedule", "delete", sid, server=api, owner=owner)
    assert deleted.code == 0
    missing = await cli("schedule", "show", sid, server=api, owner=owner)
    assert missing.code == 3  # not found
    other = await cli("schedule", "show", sid, server=api, owner=new_owner())
    assert other.code == 3


async def test_create_needs_a_timing(cli: Cli, api: Api) -> None:
    result = await cli(
        "schedule", "create", "--collection", "orders", server=api, owner=new_owner()
    )
    assert result.code == 2
    assert "--cron or --every" in result.err
