"""The TypeScript client and the Next.js example, from `make test`:

- the client's generated types match the API's OpenAPI document (CI fails on drift);
- the client's own tests (`node --test`) pass against the API served here on the local stack:
  start → wait → download → the same bytes as a direct reading of the pipeline;
- `npm pack` gives a package with its type declarations;
- the Next.js example type-checks (`tsc --noEmit`).

Node.js 20 and npm come from the machine; `node_modules` from the cache (`devstack.node_deps`).
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from api.auth import mint_token
from devstack import node_deps
from domain.models import ExportInput, ExportRequest
from scripts import ts_client
from tests.api.support import Api, IdleApiFactory, new_owner
from tests.integration import export_harness

pytestmark = pytest.mark.services

CLIENT_DIR = ts_client.CLIENT_DIR
EXAMPLE_DIR = export_harness.REPO_ROOT / "examples" / "nextjs"
NPM_TIMEOUT = 600


def _documents(count: int) -> list[dict[str, Any]]:
    names = ["Ada", 'Quote "Q"', "a,b", "line\nbreak", "=SUM(A1)", "Zoë"]
    return [
        {"n": n, "name": names[n % len(names)], "city": ["Paris", "Oslo"][n % 2]}
        for n in range(count)
    ]


@pytest.fixture(scope="module")
def node_modules() -> None:
    if shutil.which("node") is None or shutil.which("npm") is None:
        if os.environ.get("CI"):
            pytest.fail("Node.js 20 and npm are needed for the TypeScript client's tests")
        pytest.skip("Node.js and npm are not installed")
    node_deps.ensure(CLIENT_DIR)


def _run(command: list[str], cwd: Path, env: dict[str, str] | None = None) -> str:
    done = subprocess.run(
        command,
        cwd=cwd,
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=NPM_TIMEOUT,
        check=False,
    )
    assert done.returncode == 0, f"{' '.join(command)} failed:\n{done.stdout}\n{done.stderr}"
    return done.stdout


def test_the_generated_types_match_the_api(node_modules: None) -> None:
    assert ts_client.drift() == [], "run `make ts-client` and commit the result"


async def test_the_client_against_the_stack(
    node_modules: None,
    api: Api,
    idle_api: IdleApiFactory,
    collection: str,
    tmp_path: Path,
) -> None:
    owner = new_owner("tenant-ts")
    export_harness.seed(api.settings, collection, _documents(250), tenant=owner.tenant)
    export_harness.seed(api.settings, collection, _documents(5), tenant="someone-else")
    body = {
        "collection": collection,
        "pipeline": [{"$match": {"n": {"$gte": 0}}}, {"$sort": {"n": 1}}],
        "columns": [{"path": "n"}, {"path": "name", "header": "Name"}, {"path": "city"}],
        "filename": "from-typescript.csv",
    }
    request = ExportRequest.model_validate(body)
    reference = export_harness.reference_bytes(
        api.settings,
        ExportInput(
            export_id="exp_reference",
            owner=owner,
            request=request,
            requested_at=datetime.now(UTC),
        ),
        request.columns,
    )
    expected = tmp_path / "expected.csv"
    expected.write_bytes(reference)
    idle = idle_api()
    token = mint_token(api.settings.api_jwt_secret, owner.user_id, owner.tenant, timedelta(hours=1))
    _run(
        [str(CLIENT_DIR / "node_modules" / ".bin" / "tsc"), "-p", "tsconfig.test.json"], CLIENT_DIR
    )
    # In a thread: the in-process worker that runs the export shares this test's event loop.
    output = await asyncio.to_thread(
        _run,
        ["node", "--test", "--test-reporter=tap", ".build/test/client.test.js"],
        CLIENT_DIR,
        env={
            "DX_API_URL": api.url,
            "DX_IDLE_API_URL": idle.url,
            "DX_TOKEN": token,
            "DX_COLLECTION": collection,
            "DX_EXPECTED_FILE": str(expected),
        },
    )
    assert re.search(r"^# pass [1-9]", output, re.MULTILINE), output
    assert re.search(r"^# fail 0$", output, re.MULTILINE), output


def test_npm_pack_gives_a_package_with_types(node_modules: None) -> None:
    packed = json.loads(_run(["npm", "pack", "--dry-run", "--json", "--silent"], CLIENT_DIR))
    files = {entry["path"] for entry in packed[0]["files"]}
    assert {"dist/index.js", "dist/index.d.ts", "dist/schema.d.ts", "package.json"} <= files
    assert not any(name.startswith(("src/", "test/", "node_modules/")) for name in files)
    assert packed[0]["size"] < 50_000, packed[0]["size"]


def test_the_nextjs_example_type_checks(node_modules: None) -> None:
    node_deps.ensure(EXAMPLE_DIR)
    _run([str(EXAMPLE_DIR / "node_modules" / ".bin" / "tsc"), "--noEmit"], EXAMPLE_DIR)
