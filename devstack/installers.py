"""Builds or locates each server's binary, caching what it builds outside the checkout.

A second run finds the cached binary and returns at once. A failing step raises `InstallError`
naming the service, the command and the log that holds its output.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import stat
import subprocess
import sys
import tempfile
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from devstack.paths import REPO_ROOT, cache_dir, state_dir

FERRETDB_MODULE = "github.com/FerretDB/FerretDB"
FERRETDB_VERSION = "v1.24.2"
VERSITYGW_MODULE = "github.com/versity/versitygw/cmd/versitygw"
VERSITYGW_VERSION = "v1.7.0"
MONGO_JAVA_SERVER_DIR = REPO_ROOT / "devstack" / "java"


class InstallError(RuntimeError):
    """A server could not be installed; the message says which, why, and where the log is."""


def _install_log(service: str) -> Path:
    return state_dir() / "logs" / f"install-{service}.log"


def _run(
    cmd: list[str], *, service: str, cwd: Path | None = None, env: dict[str, str] | None = None
) -> str:
    log = _install_log(service)
    with log.open("a") as out:
        out.write(f"$ {' '.join(cmd)}\n")
        out.flush()
        result = subprocess.run(
            cmd, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=out, text=True, check=False
        )
        out.write(result.stdout)
    if result.returncode != 0:
        tail = "".join(log.read_text().splitlines(keepends=True)[-15:])
        raise InstallError(
            f"{service}: `{' '.join(cmd)}` failed with exit code {result.returncode}; "
            f"full log: {log}\n{tail}"
        )
    return result.stdout


def _require_tool(tool: str, service: str, hint: str) -> str:
    path = shutil.which(tool)
    if path is None:
        raise InstallError(f"{service}: `{tool}` is not on PATH; {hint}")
    return path


def _go_env(service: str) -> dict[str, str]:
    _require_tool(
        "go", service, "install Go 1.22 or newer (https://go.dev/dl/ or apt-get install golang)"
    )
    env = dict(os.environ)
    env.setdefault("GOFLAGS", "-buildvcs=false")
    return env


def venv_binary(name: str) -> Path:
    """A binary shipped by a PyPI wheel in this virtualenv (temporal, temporal-test-server)."""
    path = Path(sys.executable).parent / name
    if not path.exists():
        found = shutil.which(name)
        if found is None:
            raise InstallError(
                f"{name}: not found next to {sys.executable}; run `make install` (pip install -e '.[dev]')"
            )
        path = Path(found)
    return path


def ferretdb_binary() -> Path:
    """FerretDB v1.24.2, built from the module the Go proxy serves.

    A plain `go install ...@v1.24.2` builds a binary that panics at start: the module zip lacks the
    generated `build/version/version.txt`. So the same module source is copied, the version file
    written, and `./cmd/ferretdb` built from it.
    """
    target = cache_dir() / "bin" / f"ferretdb-{FERRETDB_VERSION}"
    if target.exists():
        return target
    service = "ferretdb"
    env = _go_env(service)
    info = json.loads(
        _run(
            ["go", "mod", "download", "-json", f"{FERRETDB_MODULE}@{FERRETDB_VERSION}"],
            service=service,
            env=env,
        )
    )
    with tempfile.TemporaryDirectory(prefix="ferretdb-src-", dir=cache_dir()) as tmp:
        src = Path(tmp) / "src"
        shutil.copytree(info["Dir"], src)
        for path in [src, *src.rglob("*")]:
            path.chmod(path.stat().st_mode | stat.S_IWUSR)
        (src / "build" / "version" / "version.txt").write_text(FERRETDB_VERSION + "\n")
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = target.with_suffix(".partial")
        _run(
            ["go", "build", "-o", str(partial), "./cmd/ferretdb"], service=service, cwd=src, env=env
        )
        partial.rename(target)
    return target


def versitygw_binary() -> Path:
    """versitygw v1.7.0 by `go install`, into a versioned folder of the cache."""
    gobin = cache_dir() / "bin" / f"versitygw-{VERSITYGW_VERSION}.d"
    target = gobin / "versitygw"
    if target.exists():
        return target
    env = _go_env("versitygw")
    env["GOBIN"] = str(gobin)
    _run(["go", "install", f"{VERSITYGW_MODULE}@{VERSITYGW_VERSION}"], service="versitygw", env=env)
    return target


def mongo_java_server_classpath() -> str:
    """Classpath of mongo-java-server (Maven Central) plus the compiled launcher in devstack/java."""
    service = "mongo-java-server"
    pom = MONGO_JAVA_SERVER_DIR / "pom.xml"
    source = MONGO_JAVA_SERVER_DIR / "MongoJavaServerMain.java"
    key = hashlib.sha256(pom.read_bytes() + source.read_bytes()).hexdigest()[:12]
    home = cache_dir() / f"mongo-java-server-{key}"
    classes, classpath_file = home / "classes", home / "classpath.txt"
    if not (classes / "MongoJavaServerMain.class").exists() or not classpath_file.exists():
        _require_tool("mvn", service, "install Maven (apt-get install maven)")
        _require_tool(
            "javac", service, "install a JDK 17 or newer (apt-get install openjdk-17-jdk)"
        )
        home.mkdir(parents=True, exist_ok=True)
        _run(
            [
                "mvn",
                "-q",
                "-B",
                "-f",
                str(pom),
                "dependency:build-classpath",
                f"-Dmdep.outputFile={classpath_file}",
            ],
            service=service,
        )
        _run(
            ["javac", "-d", str(classes), "-cp", classpath_file.read_text().strip(), str(source)],
            service=service,
        )
    return f"{classes}{os.pathsep}{classpath_file.read_text().strip()}"


BUILDS: dict[str, Callable[[], object]] = {
    "ferretdb": ferretdb_binary,
    "s3": versitygw_binary,
    "mongo-java-server": mongo_java_server_classpath,
}


def install_all(names: list[str] | None = None) -> list[str]:
    """Build what is missing, in parallel (the two Go builds dominate a first run); the
    failures, each naming the service, the command and its log."""
    wanted = [name for name in BUILDS if names is None or name in names]
    with ThreadPoolExecutor(max_workers=3) as pool:
        futures = {name: pool.submit(BUILDS[name]) for name in wanted}
        failures = []
        for name, future in futures.items():
            try:
                future.result()
            except InstallError as exc:
                failures.append(f"FAILED to install {name}: {exc}")
    return failures


if __name__ == "__main__":
    # Standard library only, so `make` can build the servers with the system Python while pip
    # fills the virtualenv: on a first run the two take about as long as each other.
    problems = install_all()
    for problem in problems:
        print(problem, file=sys.stderr)
    sys.exit(1 if problems else 0)
