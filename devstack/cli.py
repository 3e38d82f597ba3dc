"""`python -m devstack up|down|status|env`: the local stack, for make and for people."""

from __future__ import annotations

import argparse
import sys

from devstack import installers, services


def _up(names: list[str]) -> int:
    failures = installers.install_all(names)
    for failure in failures:
        print(failure, file=sys.stderr)
    if failures:
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
