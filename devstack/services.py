"""Starting, probing and stopping each local server as a background process.

Each server runs in its own session (so `make` returning does not stop it), writes to
`.devstack/logs/NAME.log` and leaves its pid in `.devstack/pids/NAME.pid`.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from devstack import installers
from devstack.paths import state_dir

HOST = "127.0.0.1"
TEMPORAL_PORT = int(os.environ.get("DEVSTACK_TEMPORAL_PORT", "7233"))
TEMPORAL_UI_PORT = int(os.environ.get("DEVSTACK_TEMPORAL_UI_PORT", "8233"))
FERRETDB_PORT = int(os.environ.get("DEVSTACK_FERRETDB_PORT", "27017"))
MONGO_JAVA_SERVER_PORT = int(os.environ.get("DEVSTACK_MONGO_JAVA_SERVER_PORT", "27018"))
S3_PORT = int(os.environ.get("DEVSTACK_S3_PORT", "7070"))
API_PORT = int(os.environ.get("DEVSTACK_API_PORT", "8000"))
DEMO_WEBHOOK_PORT = int(os.environ.get("DEVSTACK_DEMO_WEBHOOK_PORT", str(API_PORT + 9)))
"""The demo's local webhook receiver: listed in WEBHOOK_ALLOWED_HOSTS by its exact host:port."""
S3_BUCKET = os.environ.get("DEVSTACK_S3_BUCKET", "exports")
AWS_REGION = "us-east-1"
MONGODB_DATABASE = "durable_export"

# Custom search attributes the API lists exports by (owner, tenant, status).
SEARCH_ATTRIBUTES = {
    "ExportOwner": "Keyword",
    "ExportTenant": "Keyword",
    "ExportStatus": "Keyword",
}


class ServiceError(RuntimeError):
    """A server did not start or answer; the message names it, the reason and its log."""


@dataclass(frozen=True)
class Service:
    name: str
    port: int
    command: Callable[[], list[str]]
    answers: Callable[[], bool]
    start_timeout: float = 60.0
    app: bool = False
    """The product's own processes (worker, API) rather than a server it depends on."""

    @property
    def log(self) -> Path:
        return state_dir() / "logs" / f"{self.name}.log"

    @property
    def pidfile(self) -> Path:
        return state_dir() / "pids" / f"{self.name}.pid"

    def pid(self) -> int | None:
        try:
            pid = int(self.pidfile.read_text().strip())
        except (FileNotFoundError, ValueError):
            return None
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return None
        return pid


def credentials() -> dict[str, str]:
    """Local S3 keys and the API's secrets: made once per checkout, kept in .devstack/."""
    path = state_dir() / "credentials.json"
    creds: dict[str, str] = json.loads(path.read_text()) if path.exists() else {}
    wanted: dict[str, Callable[[], str]] = {
        "aws_access_key_id": lambda: "DX" + secrets.token_hex(8).upper(),
        "aws_secret_access_key": lambda: secrets.token_urlsafe(30),
        "api_jwt_secret": lambda: secrets.token_urlsafe(32),
        "webhook_signing_secret": lambda: secrets.token_urlsafe(32),
    }
    missing = {key: make() for key, make in wanted.items() if key not in creds}
    if missing:
        creds.update(missing)
        path.write_text(json.dumps(creds, indent=2))
        path.chmod(0o600)
    return creds


def port_open(port: int, host: str = HOST) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((host, port)) == 0


def _mongo_answers(port: int) -> Callable[[], bool]:
    def check() -> bool:
        if not port_open(port):
            return False
        from pymongo import MongoClient
        from pymongo.errors import PyMongoError

        client: MongoClient[dict[str, object]] = MongoClient(
            f"mongodb://{HOST}:{port}/", serverSelectionTimeoutMS=1000
        )
        try:
            client.admin.command("ping")
            return True
        except PyMongoError:
            return False
        finally:
            client.close()

    return check


def temporal_answers(port: int = TEMPORAL_PORT) -> bool:
    """The Temporal frontend on `port` reports SERVING."""
    if not port_open(port):
        return False
    result = subprocess.run(
        [
            str(installers.venv_binary("temporal")),
            "operator",
            "cluster",
            "health",
            "--address",
            f"{HOST}:{port}",
        ],
        capture_output=True,
        text=True,
        timeout=10,
        check=False,
    )
    return result.returncode == 0 and "SERVING" in result.stdout


def _s3_answers() -> bool:
    if not port_open(S3_PORT):
        return False
    try:
        urllib.request.urlopen(f"http://{HOST}:{S3_PORT}/", timeout=2)
    except urllib.error.HTTPError:
        return True  # 403 for an anonymous request: the gateway is up and checks signatures
    except OSError:
        return False
    return True


def temporal_command(
    *,
    port: int = TEMPORAL_PORT,
    ui_port: int | None = TEMPORAL_UI_PORT,
    db_file: Path | None = None,
    dynamic_config: dict[str, str] | None = None,
) -> list[str]:
    """`temporal server start-dev` with our search attributes; tests start extra instances with it."""
    cmd = [
        str(installers.venv_binary("temporal")),
        "server",
        "start-dev",
        "--ip",
        HOST,
        "--port",
        str(port),
        "--log-level",
        "warn",
        "--ui-disable-news-fetch",
    ]
    cmd += ["--headless"] if ui_port is None else ["--ui-port", str(ui_port), "--ui-ip", HOST]
    if db_file is not None:
        cmd += ["--db-filename", str(db_file)]
    for key, kind in SEARCH_ATTRIBUTES.items():
        cmd += ["--search-attribute", f"{key}={kind}"]
    for key, value in (dynamic_config or {}).items():
        cmd += ["--dynamic-config-value", f"{key}={value}"]
    return cmd


def _ferretdb_command() -> list[str]:
    data = state_dir() / "data" / "ferretdb"
    data.mkdir(parents=True, exist_ok=True)
    return [
        str(installers.ferretdb_binary()),
        f"--listen-addr={HOST}:{FERRETDB_PORT}",
        "--handler=sqlite",
        f"--sqlite-url=file:{data}/",
        f"--state-dir={data}",
        "--telemetry=disable",
        "--debug-addr=-",
        "--log-level=warn",
    ]


def _mongo_java_server_command() -> list[str]:
    return [
        "java",
        "-Xmx2g",
        "-Dorg.slf4j.simpleLogger.defaultLogLevel=warn",
        "-cp",
        installers.mongo_java_server_classpath(),
        "MongoJavaServerMain",
        str(MONGO_JAVA_SERVER_PORT),
        HOST,
    ]


def _versitygw_command() -> list[str]:
    data = state_dir() / "data" / "s3"
    data.mkdir(parents=True, exist_ok=True)
    creds = credentials()
    return [
        str(installers.versitygw_binary()),
        "--access",
        creds["aws_access_key_id"],
        "--secret",
        creds["aws_secret_access_key"],
        "--region",
        AWS_REGION,
        "--port",
        f"{HOST}:{S3_PORT}",
        "--quiet",
        "posix",
        str(data),
    ]


def _app_command(module: str, *args: str) -> Callable[[], list[str]]:
    return lambda: [sys.executable, "-m", module, *args]


def _api_answers() -> bool:
    try:
        with urllib.request.urlopen(f"http://{HOST}:{API_PORT}/healthz", timeout=2) as response:
            return bool(response.status == 200)
    except OSError:
        return False


def _worker_answers() -> bool:
    """The workers run and both kinds have logged that they poll (they have no port of their
    own): `export-worker --role all` supervises one workflow and N activity processes."""
    worker = SERVICES["worker"]
    if worker.pid() is None:
        return False
    try:
        last_start = worker.log.read_text(errors="replace").rsplit("\n--- ", 1)[-1]
    except FileNotFoundError:
        return False
    return all(f"worker polling ({role})" in last_start for role in ("workflows", "activities"))


SERVICES: dict[str, Service] = {
    service.name: service
    for service in (
        Service(
            "temporal",
            TEMPORAL_PORT,
            lambda: temporal_command(db_file=state_dir() / "data" / "temporal.sqlite"),
            temporal_answers,
            start_timeout=90,
        ),
        Service("ferretdb", FERRETDB_PORT, _ferretdb_command, _mongo_answers(FERRETDB_PORT)),
        Service(
            "mongo-java-server",
            MONGO_JAVA_SERVER_PORT,
            _mongo_java_server_command,
            _mongo_answers(MONGO_JAVA_SERVER_PORT),
        ),
        Service("s3", S3_PORT, _versitygw_command, _s3_answers),
        Service(
            "worker",
            0,
            _app_command("workflows.worker", "--role", "all"),
            _worker_answers,
            app=True,
        ),
        Service(
            "api",
            API_PORT,
            _app_command("api.main", "--host", HOST, "--port", str(API_PORT)),
            _api_answers,
            app=True,
        ),
    )
}
INFRASTRUCTURE = [name for name, service in SERVICES.items() if not service.app]


def spawn(cmd: list[str], log: Path, env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
    """Start a server in its own session, its output appended to `log`."""
    with log.open("ab") as out:
        out.write(f"\n--- {time.strftime('%Y-%m-%d %H:%M:%S')} $ {' '.join(cmd)}\n".encode())
        return subprocess.Popen(
            cmd,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            close_fds=True,
            env=env,
        )


def wait_until(answers: Callable[[], bool], *, timeout: float, alive: Callable[[], bool]) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if answers():
            return True
        if not alive():
            return False
        time.sleep(0.3)
    return False


def _log_tail(log: Path, lines: int = 12) -> str:
    try:
        return "".join(log.read_text(errors="replace").splitlines(keepends=True)[-lines:])
    except FileNotFoundError:
        return ""


def start(name: str) -> str:
    """Start one service unless it already runs; wait until it answers. Returns what was done."""
    service = SERVICES[name]
    if service.pid() is not None and service.answers():
        return "already running"
    if service.pid() is None and service.port and port_open(service.port):
        raise ServiceError(
            f"{name}: port {HOST}:{service.port} is taken by a process this stack did not start; "
            f"stop it or set DEVSTACK_{name.upper().replace('-', '_')}_PORT"
        )
    try:
        cmd = service.command()
    except installers.InstallError as exc:
        raise ServiceError(str(exc)) from exc
    # The product's processes read their configuration from the environment: the stack's.
    env = {**os.environ, **env_values()} if service.app else None
    process = spawn(cmd, service.log, env)
    service.pidfile.write_text(str(process.pid))
    if not wait_until(
        service.answers, timeout=service.start_timeout, alive=lambda: process.poll() is None
    ):
        code = process.poll()
        why = (
            f"exited with code {code}"
            if code is not None
            else (f"did not answer on {HOST}:{service.port} within {service.start_timeout:.0f} s")
        )
        stop(name)
        raise ServiceError(f"{name}: {why}; log: {service.log}\n{_log_tail(service.log)}")
    return f"started (pid {process.pid})"


def stop(name: str, timeout: float = 15.0) -> str:
    service = SERVICES[name]
    pid = service.pid()
    if pid is None:
        service.pidfile.unlink(missing_ok=True)
        return "not running"
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(pid, sig)
        except ProcessLookupError:
            break
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and service.pid() is not None:
            _reap(pid)
            time.sleep(0.1)
        if service.pid() is None:
            break
    service.pidfile.unlink(missing_ok=True)
    return f"stopped (pid {pid})"


def _reap(pid: int) -> None:
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)


def ensure_bucket() -> None:
    import boto3
    from botocore.exceptions import ClientError

    creds = credentials()
    s3 = boto3.client(
        "s3",
        endpoint_url=f"http://{HOST}:{S3_PORT}",
        region_name=AWS_REGION,
        aws_access_key_id=creds["aws_access_key_id"],
        aws_secret_access_key=creds["aws_secret_access_key"],
    )
    try:
        s3.create_bucket(Bucket=S3_BUCKET)
    except ClientError as exc:
        if exc.response["Error"]["Code"] not in {"BucketAlreadyOwnedByYou", "BucketAlreadyExists"}:
            raise ServiceError(f"s3: cannot create bucket {S3_BUCKET!r}: {exc}") from exc


def env_values() -> dict[str, str]:
    creds = credentials()
    return {
        "TEMPORAL_ADDRESS": f"{HOST}:{TEMPORAL_PORT}",
        "TEMPORAL_NAMESPACE": "default",
        "TEMPORAL_UI_URL": f"http://{HOST}:{TEMPORAL_UI_PORT}",
        "MONGODB_URI": f"mongodb://{HOST}:{FERRETDB_PORT}/",
        "MONGODB_DATABASE": MONGODB_DATABASE,
        "SECOND_MONGODB_URI": f"mongodb://{HOST}:{MONGO_JAVA_SERVER_PORT}/",
        "S3_ENDPOINT_URL": f"http://{HOST}:{S3_PORT}",
        "S3_BUCKET": S3_BUCKET,
        "AWS_ACCESS_KEY_ID": creds["aws_access_key_id"],
        "AWS_SECRET_ACCESS_KEY": creds["aws_secret_access_key"],
        "AWS_REGION": AWS_REGION,
        "API_JWT_SECRET": creds["api_jwt_secret"],
        "API_PUBLIC_URL": f"http://{HOST}:{API_PORT}",
        "WEBHOOK_SIGNING_SECRET": creds["webhook_signing_secret"],
        "WEBHOOK_ALLOWED_HOSTS": f"{HOST}:{DEMO_WEBHOOK_PORT}",
    }


def stack_ports() -> dict[str, int]:
    """The `DEVSTACK_*_PORT` settings this process runs the stack with."""
    return {
        "DEVSTACK_TEMPORAL_PORT": TEMPORAL_PORT,
        "DEVSTACK_TEMPORAL_UI_PORT": TEMPORAL_UI_PORT,
        "DEVSTACK_FERRETDB_PORT": FERRETDB_PORT,
        "DEVSTACK_MONGO_JAVA_SERVER_PORT": MONGO_JAVA_SERVER_PORT,
        "DEVSTACK_S3_PORT": S3_PORT,
        "DEVSTACK_API_PORT": API_PORT,
        "DEVSTACK_DEMO_WEBHOOK_PORT": DEMO_WEBHOOK_PORT,
    }


def write_env_file() -> Path:
    path = state_dir() / "env"
    lines = ["# Written by `make services`: source it to reach the local stack.\n"]
    lines += [f"export {key}={value}\n" for key, value in env_values().items()]
    # The ports the stack runs on, so that anything sourcing this file (the tests that restart
    # a server, `make up`) uses them too, not the defaults.
    lines += [f"export {key}={value}\n" for key, value in stack_ports().items()]
    path.write_text("".join(lines))
    path.chmod(0o600)
    return path
