"""Playwright (async API) driving Debian's Chromium against the API tests' apps.

Playwright's own browser download is not reachable here, so the browser is the system's
`chromium` (`scripts/install-chromium`, which `.ci/run` calls). Without it the tests skip,
except in CI (`CI=true`), where a missing browser fails them: they must run there.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import AsyncIterator

import pytest
from playwright.async_api import Browser, BrowserContext, async_playwright

from tests.api.conftest import (  # noqa: F401 (fixtures, registered by import)
    api,
    api_settings,
    collection,
    http,
    idle_api,
    temporal,
)

CHROMIUM_NAMES = ("chromium", "chromium-browser")


def chromium_path() -> str:
    for name in CHROMIUM_NAMES:
        found = shutil.which(name)
        if found:
            return found
    message = "no chromium binary: run scripts/install-chromium (as root)"
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)


@pytest.fixture(scope="session")
async def browser() -> AsyncIterator[Browser]:
    executable = chromium_path()
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(
            executable_path=executable,
            headless=True,
            # As root (CI) Chromium refuses its sandbox; /dev/shm may be small in containers.
            args=["--no-sandbox", "--disable-dev-shm-usage"],
        )
        yield launched
        await launched.close()


@pytest.fixture
async def context(browser: Browser) -> AsyncIterator[BrowserContext]:
    made = await browser.new_context(accept_downloads=True)
    made.set_default_timeout(30_000)
    yield made
    await made.close()
