"""`python -m devstack up|down|status|env`: the local stack, for make and for people."""

from __future__ import annotations

import argparse
import sys
from concurrent.futures import Future, ThreadPoolExecutor

from devstack import installers, services


def _up(names: list[str]) -> int:
    # Build what is missing first, in parallel (the two Go builds dominate a first run).
    with ThreadPoolExecutor(max_workers=3) as pool:
        installs = {
            "ferretdb": installers.ferretdb_binary,
            "s3": installers.versitygw_binary,
            "mongo-java-server": installers.mongo_java_server_classpath,
        }
        builds: dict[str, Future[object]] = {
            name: pool.submit(install) for name, install in installs.items() if name in names
        }
        failed = False
        for name, future in builds.items():
            try:
                future.result()
            except installers.InstallError as exc:
                print(f"FAILED to install {name}: {exc}", file=sys.stderr)
                failed = True
        if failed:
            return 1
    for name in names:
        try:
            print(f"{name:18} {services.start(name)}", flush=True)
        except services.ServiceError as exc:
            print(f"FAILED {exc}", file=sys.stderr)
            return 1
    if "s3" in names:
        services.ensure_bucket()
    print(f"environment written to {services.write_env_file()}")
    return 0


def _down(names: list[str]) -> int:
    for name in reversed(names):
        print(f"{name:18} {services.stop(name)}")
    return 0


def _status(names: list[str]) -> int:
    down = 0
    for name in names:
        service = services.SERVICES[name]
        pid = service.pid()
        answers = service.answers()
        state = "answering" if answers else ("started, not answering" if pid else "stopped")
        down += not answers
        print(f"{name:18} {state:24} pid={pid or '-':<8} port={service.port:<6} log={service.log}")
    return 1 if down else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m devstack",
        description="Install, start, stop and inspect the local service stack "
        "(Temporal dev server, FerretDB, mongo-java-server, versitygw S3).",
    )
    parser.add_argument("action", choices=["up", "down", "status", "env"])
    parser.add_argument(
        "services",
        nargs="*",
        choices=[[], *services.SERVICES],
        default=[],
        help="these services only (default: the servers; `down` stops the worker and API too)",
    )
    args = parser.parse_args(argv)
    default = list(services.SERVICES) if args.action == "down" else services.INFRASTRUCTURE
    names = args.services or default
    if args.action == "up":
        return _up(names)
    if args.action == "down":
        return _down(names)
    if args.action == "status":
        return _status(names)
    print(services.write_env_file().read_text(), end="")
    return 0


if __name__ == "__main__":
    sys.exit(main())
