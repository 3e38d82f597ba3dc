"""`node_modules` of the project's JavaScript packages (the TypeScript client, the Next.js
example), installed with `npm ci` once per lock file into the cache outside the checkout
(`~/.cache/durable-export/node_modules/<package>-<hash of the lock>`) and linked into place, as
the servers' binaries are: a fresh clone (CI) reuses them instead of installing again.

`python -m devstack.node_deps clients/typescript examples/nextjs`
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

from devstack.paths import REPO_ROOT, cache_dir

COMPLETE = ".complete"


class NodeDepsError(RuntimeError):
    """npm is missing or `npm ci` failed."""


def _digest(package_dir: Path) -> str:
    hasher = hashlib.sha256()
    for name in ("package.json", "package-lock.json"):
        hasher.update((package_dir / name).read_bytes())
    return hasher.hexdigest()[:16]


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    """One installer at a time per lock file (checkouts on one machine share the cache)."""
    with path.open("w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def cached_modules(package_dir: Path) -> Path:
    """The cached `node_modules` for this package's lock file, installed when missing."""
    npm = shutil.which("npm")
    if npm is None:
        raise NodeDepsError("npm is not installed (Node.js 20 or later is needed)")
    root = cache_dir() / "node_modules"
    root.mkdir(parents=True, exist_ok=True)
    target = root / f"{package_dir.name}-{_digest(package_dir)}"
    with _locked(root / f"{target.name}.lock"):
        if (target / COMPLETE).exists():
            return target / "node_modules"
        staging = Path(tempfile.mkdtemp(prefix=f"{target.name}.", dir=root))
        for name in ("package.json", "package-lock.json"):
            shutil.copy2(package_dir / name, staging / name)
        done = subprocess.run(
            # No install scripts and no optional packages (Next's SWC and sharp binaries): the
            # cached modules serve type checks, builds and the client's tests, not `next dev`.
            [
                npm,
                "ci",
                "--no-audit",
                "--no-fund",
                "--ignore-scripts",
                "--omit=optional",
                "--loglevel=error",
            ],
            cwd=staging,
            capture_output=True,
            text=True,
            check=False,
        )
        if done.returncode != 0:
            shutil.rmtree(staging, ignore_errors=True)
            raise NodeDepsError(f"npm ci in {package_dir} failed:\n{done.stdout}{done.stderr}")
        shutil.rmtree(target, ignore_errors=True)
        staging.rename(target)
        (target / COMPLETE).touch()
    return target / "node_modules"


def ensure(package_dir: Path) -> Path:
    """Link `package_dir/node_modules` to the cached install; a real directory there (a
    developer's own `npm install`) is left alone."""
    modules = cached_modules(package_dir)
    link = package_dir / "node_modules"
    if link.is_symlink():
        if link.resolve() == modules.resolve():
            return link
        link.unlink()
    elif link.exists():
        return link
    link.symlink_to(modules, target_is_directory=True)
    return link


def main(argv: list[str] | None = None) -> int:
    for name in argv if argv is not None else sys.argv[1:]:
        try:
            print(ensure((REPO_ROOT / name).resolve()))
        except NodeDepsError as exc:
            print(exc, file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
