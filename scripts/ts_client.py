"""The TypeScript client's generated files: `openapi.json` (the API's document, from
`create_app`) and `src/schema.ts` (its types, by openapi-typescript, pinned in the client's
package-lock). `generate` rewrites them; `check` fails when the committed ones drift from the API.

`python -m scripts.ts_client generate|check` (`make ts-client`, `make ts-check`; the check also
runs in `make test`, tests/clients/test_typescript_client.py).
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path

from devstack import node_deps
from devstack.paths import REPO_ROOT
from scripts.dump_openapi import openapi_json

CLIENT_DIR = REPO_ROOT / "clients" / "typescript"
GENERATED = ("openapi.json", "src/schema.ts")


def generate(into: Path) -> None:
    """Write the generated files under `into` (the client's folder, or a scratch copy)."""
    node_deps.ensure(CLIENT_DIR)
    (into / "src").mkdir(parents=True, exist_ok=True)
    (into / "openapi.json").write_text(openapi_json(), encoding="utf-8")
    done = subprocess.run(
        [
            str(CLIENT_DIR / "node_modules" / ".bin" / "openapi-typescript"),
            str(into / "openapi.json"),
            "--output",
            str(into / "src" / "schema.ts"),
            # Request fields with a default stay optional (the generator makes them required).
            "--default-non-nullable=false",
        ],
        cwd=CLIENT_DIR,
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"openapi-typescript failed:\n{done.stdout}{done.stderr}")


def drift() -> list[str]:
    """The generated files whose committed copy differs from what the API generates now."""
    with tempfile.TemporaryDirectory() as scratch:
        fresh = Path(scratch)
        generate(fresh)
        return [
            name
            for name in GENERATED
            if not (CLIENT_DIR / name).exists()
            or (CLIENT_DIR / name).read_bytes() != (fresh / name).read_bytes()
        ]


def main(argv: list[str] | None = None) -> int:
    command = (argv if argv is not None else sys.argv[1:]) or ["check"]
    if command == ["generate"]:
        generate(CLIENT_DIR)
        print(f"wrote {', '.join(GENERATED)} in {CLIENT_DIR.relative_to(REPO_ROOT)}")
        return 0
    if command == ["check"]:
        stale = drift()
        if stale:
            print(
                f"the TypeScript client's {', '.join(stale)} differ from what the API generates: run "
                "`make ts-client` and commit the result",
                file=sys.stderr,
            )
            return 1
        print("the TypeScript client's types match the API")
        return 0
    print("usage: python -m scripts.ts_client generate|check", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
