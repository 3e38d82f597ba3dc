"""The "My exports" page (/ui) in a real browser: sign in, explain and start an export, watch it
reach COMPLETED, download it and compare with the API's file, cancel an unfinished one, and see
that another user sees none of it. Also: the page's Content-Security-Policy holds (no
violation), the token never appears in a URL, every field has a label, and a phone-sized
window needs no sideways scrolling."""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
from playwright.async_api import Browser, BrowserContext, Page, expect
from temporalio.client import Client
from temporalio.worker import Worker

from api.auth import mint_token
from connections.temporal import connect
from domain.models import Owner
from domain.settings import Settings
from tests.api.support import Api, IdleApiFactory, new_owner, serve
from tests.integration import export_harness
from workflows.task_queues import activity_task_queue_for
from workflows.worker_processes import ALL_WORKFLOWS, all_activities

pytestmark = [pytest.mark.services, pytest.mark.browser]

ROWS = 2500
REPO_ROOT = Path(__file__).resolve().parents[2]
SCREENSHOT = REPO_ROOT / "docs" / "my-exports.png"
SLOW = 120_000  # ms: an export on a loaded machine


def _token(api: Api, owner: Owner) -> str:
    return mint_token(api.settings.api_jwt_secret, owner.user_id, owner.tenant, timedelta(hours=1))


class Watched:
    """What the page did: every URL it requested, and console errors (CSP violations)."""

    def __init__(self, page: Page) -> None:
        self.urls: list[str] = []
        self.errors: list[str] = []
        page.on("request", lambda request: self.urls.append(request.url))
        page.on(
            "console",
            lambda message: self.errors.append(message.text) if message.type == "error" else None,
        )


async def _sign_in(page: Page, api: Api, owner: Owner) -> Watched:
    watched = Watched(page)
    await page.goto(f"{api.url}/ui")
    await page.get_by_label("Bearer token").fill(_token(api, owner))
    await page.get_by_role("button", name="Sign in", exact=True).click()
    await expect(page.get_by_text(f"Signed in as {owner.user_id}")).to_be_visible()
    return watched


async def _fill_export(page: Page, collection: str) -> None:
    await page.get_by_label("Collection").fill(collection)
    await page.get_by_label("Pipeline (JSON array of stages)").fill(
        '[{"$match": {"n": {"$gte": 0}}}, {"$sort": {"n": 1}}]'
    )
    await page.get_by_label("Columns").fill("n, name:Name")
    await page.get_by_label("Format").select_option("csv")


async def _explain_and_start(page: Page) -> str:
    start = page.get_by_role("button", name="Start export")
    await expect(start).to_be_disabled()  # explain comes first
    await page.get_by_role("button", name="Explain").click()
    await expect(page.locator("#explain-strategy")).to_contain_text("keyset")
    await expect(page.locator("#explain-pipeline")).to_contain_text("$match")
    await start.click()
    status = page.locator("#status")
    await expect(status).to_contain_text("Started exp_")
    text = await status.text_content() or ""
    return text.removeprefix("Started ").rstrip(".")


async def test_sign_in_start_watch_download_and_compare(
    context: BrowserContext, api: Api, collection: str, http: httpx.AsyncClient
) -> None:
    owner = new_owner()
    docs = [{"n": n, "name": f"name {n}"} for n in range(ROWS)]
    export_harness.seed(api.settings, collection, docs, tenant=owner.tenant)
    weekly = await http.post(
        f"{api.url}/schedules",
        json={
            "export": {"collection": collection, "filename": "weekly.csv"},
            "cron": "0 7 * * MON",
            "timezone": "Europe/Paris",
        },
        headers=api.headers(owner),
    )
    assert weekly.status_code == 201
    page = await context.new_page()
    watched = await _sign_in(page, api, owner)
    token = _token(api, owner)

    await _fill_export(page, collection)
    export_id = await _explain_and_start(page)
    row = page.locator(f'#export-rows tr[data-export-id="{export_id}"]')
    await expect(row).to_be_visible()
    await expect(row.locator(".export-status")).to_have_text("COMPLETED", timeout=SLOW)
    await expect(row.locator(".export-rows")).to_have_text(f"{ROWS:,}")
    await expect(page.locator("#schedule-rows tr")).to_have_count(1, timeout=SLOW)
    await page.screenshot(path=str(_screenshot_path()), full_page=True)

    async with page.expect_download() as download_info:
        await row.get_by_role("button", name=f"Download {export_id}").click()
    download = await download_info.value
    saved = Path(await download.path())
    through_api = await http.get(
        f"{api.url}/exports/{export_id}/download",
        headers={"Authorization": f"Bearer {token}"},
        follow_redirects=True,
    )
    assert through_api.status_code == 200
    content = await asyncio.to_thread(saved.read_bytes)
    assert content == through_api.content
    assert content.startswith(b"n,Name\r\n0,name 0\r\n")
    assert download.suggested_filename.endswith(".csv")

    assert all(token not in url for url in watched.urls), "the token went into a URL"
    assert not [e for e in watched.errors if "Content Security Policy" in e], watched.errors
    await http.delete(
        f"{api.url}/schedules/{weekly.json()['schedule_id']}", headers=api.headers(owner)
    )


async def test_cancel_an_unfinished_export(
    context: BrowserContext, idle_api: IdleApiFactory, collection: str
) -> None:
    """Only the workflow worker runs at first: the export starts and waits for its first
    activity, so it is certainly unfinished when Cancel is pressed; the activity worker then
    starts, and the export ends CANCELLED."""
    api = idle_api()
    owner = new_owner()
    export_harness.seed(
        api.settings, collection, [{"n": n} for n in range(50)], tenant=owner.tenant
    )
    client = await connect(api.settings)
    page = await context.new_page()
    await _sign_in(page, api, owner)
    async with Worker(client, task_queue=api.settings.temporal_task_queue, workflows=ALL_WORKFLOWS):
        await _fill_export(page, collection)
        export_id = await _explain_and_start(page)
        row = page.locator(f'#export-rows tr[data-export-id="{export_id}"]')
        cancel = row.get_by_role("button", name=f"Cancel {export_id}")
        await cancel.focus()
        await page.keyboard.press("Enter")  # keyboard works as well as a click
        await expect(page.locator("#status")).to_contain_text(f"Cancelling {export_id}")
        async with _activity_worker(api.settings, client):
            await expect(row.locator(".export-status")).to_have_text("CANCELLED", timeout=SLOW)
        await expect(row.get_by_role("button")).to_have_count(0)


@contextlib.asynccontextmanager
async def _activity_worker(settings: Settings, client: Client) -> AsyncIterator[None]:
    with ThreadPoolExecutor(max_workers=2) as pool:
        async with Worker(
            client,
            task_queue=activity_task_queue_for(settings.temporal_task_queue),
            activities=all_activities(settings, client),
            activity_executor=pool,
        ):
            yield


async def test_another_user_sees_none_of_them(
    browser: Browser,
    context: BrowserContext,
    api: Api,
    collection: str,
    http: httpx.AsyncClient,
) -> None:
    owner, other = new_owner(), new_owner()
    export_harness.seed(api.settings, collection, [{"n": 1}], tenant=owner.tenant)
    started = await http.post(
        f"{api.url}/exports", json={"collection": collection}, headers=api.headers(owner)
    )
    assert started.status_code == 202
    schedule = await http.post(
        f"{api.url}/schedules",
        json={"export": {"collection": collection}, "interval_seconds": 3600, "paused": True},
        headers=api.headers(owner),
    )
    assert schedule.status_code == 201

    mine = await context.new_page()
    await _sign_in(mine, api, owner)
    await expect(mine.locator("#export-rows tr")).to_have_count(1)
    await expect(mine.locator("#schedule-rows tr")).to_have_count(1, timeout=SLOW)

    theirs = await (await browser.new_context()).new_page()  # a separate session
    await _sign_in(theirs, api, other)
    await expect(theirs.locator("#no-exports")).to_be_visible()
    await expect(theirs.locator("#export-rows tr")).to_have_count(0)
    await expect(theirs.locator("#no-schedules")).to_be_visible()
    await theirs.context.close()


async def test_pause_and_resume_a_schedule(
    context: BrowserContext, api: Api, collection: str, http: httpx.AsyncClient
) -> None:
    owner = new_owner()
    created = await http.post(
        f"{api.url}/schedules",
        json={"export": {"collection": collection}, "cron": "0 7 * * MON"},
        headers=api.headers(owner),
    )
    sid = created.json()["schedule_id"]
    page = await context.new_page()
    await _sign_in(page, api, owner)
    row = page.locator(f'#schedule-rows tr[data-schedule-id="{sid}"]')
    await expect(row.locator(".schedule-state")).to_have_text("Active", timeout=SLOW)
    await row.get_by_role("button", name=f"Pause {sid}").click()
    await expect(row.locator(".schedule-state")).to_have_text("Paused")
    described = await http.get(f"{api.url}/schedules/{sid}", headers=api.headers(owner))
    assert described.json()["paused"] is True
    await row.get_by_role("button", name=f"Resume {sid}").click()
    await expect(row.locator(".schedule-state")).to_have_text("Active")
    assert (await http.get(f"{api.url}/schedules/{sid}", headers=api.headers(owner))).json()[
        "paused"
    ] is False
    await http.delete(f"{api.url}/schedules/{sid}", headers=api.headers(owner))


async def test_labels_phone_width_and_dev_sign_in(
    context: BrowserContext, api_settings: Settings
) -> None:
    with serve(api_settings.model_copy(update={"development_mode": True})) as dev_api:
        page = await context.new_page()
        await page.set_viewport_size({"width": 375, "height": 740})
        watched = Watched(page)
        await page.goto(f"{dev_api.url}/ui")
        unlabelled = await page.evaluate(
            "() => [...document.querySelectorAll('input, textarea, select')]"
            ".filter(e => e.labels.length === 0).map(e => e.id)"
        )
        assert unlabelled == []
        await page.get_by_label("User").fill("dev-user-ui")
        await page.get_by_label("Tenant").fill("dev-tenant-ui")
        await page.get_by_role("button", name="Sign in as this user").click()
        await expect(page.get_by_text("Signed in as dev-user-ui (dev-tenant-ui)")).to_be_visible()
        await expect(page.locator("#no-exports")).to_be_visible()
        overflow = await page.evaluate(
            "() => document.documentElement.scrollWidth - window.innerWidth"
        )
        assert overflow <= 0, "the page scrolls sideways on a phone"
        stored = await page.evaluate("() => Object.keys(localStorage).length")
        assert stored == 0, "the token belongs in sessionStorage only"
        assert not [e for e in watched.errors if "Content Security Policy" in e], watched.errors


def _screenshot_path() -> Path:
    """`docs/my-exports.png` (the README's) when SAVE_SCREENSHOT=1, else a scratch file."""
    if os.environ.get("SAVE_SCREENSHOT") == "1":
        SCREENSHOT.parent.mkdir(exist_ok=True)
        return SCREENSHOT
    scratch = REPO_ROOT / ".devstack" / "screenshots"
    scratch.mkdir(parents=True, exist_ok=True)
    return scratch / "my-exports.png"
