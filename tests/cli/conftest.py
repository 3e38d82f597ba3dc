"""The CLI runs in-process (`main(argv)`) against the API tests' app, served on a real port.

The API fixtures are those of `tests/api/conftest.py`, imported so that pytest registers them
here too. `main` blocks, so it runs in a thread: the in-process worker lives in the test
session's event loop, which must keep running while the CLI waits for an export.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import timedelta

import pytest

from api.auth import mint_token
from cli.main import main
from domain.models import Owner
from tests.api.conftest import (  # noqa: F401 (fixtures, registered by import)
    api,
    api_settings,
    collection,
    idle_api,
    temporal,
)
from tests.api.support import Api


@dataclass(frozen=True)
class Result:
    code: int
    out: str
    err: str


class Cli:
    """Runs `exportctl` with output captured; with `server`, `--api-url` points it at that app,
    and with `owner` too, `--token` is a token of `owner`."""

    def __init__(self, capsys: pytest.CaptureFixture[str]) -> None:
        self._capsys = capsys

    async def __call__(
        self, *argv: str, server: Api | None = None, owner: Owner | None = None
    ) -> Result:
        connection: list[str] = []
        if server is not None:
            connection += ["--api-url", server.url]
        if server is not None and owner is not None:
            token = mint_token(
                server.settings.api_jwt_secret, owner.user_id, owner.tenant, timedelta(hours=1)
            )
            connection += ["--token", token]
        self._capsys.readouterr()
        code = await asyncio.to_thread(main, [*connection, *argv])
        captured = self._capsys.readouterr()
        return Result(code, captured.out, captured.err)


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> Cli:
    """`exportctl` in-process, with no connection settings inherited from the environment."""
    for name in ("EXPORTCTL_API_URL", "EXPORTCTL_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.delenv("COLUMNS", raising=False)
    return Cli(capsys)
