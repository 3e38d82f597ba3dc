"""`python -m bench`: run the benchmark scenarios on the local stack and write the report.

Writes `bench/results/<date>.json`, `bench/results/<date>.md` and PNG plots beside them
(`<date>-quick.*` for `--quick`). Needs the local stack (`make services`); starts its own API and
worker processes on task queues of their own, and stops them at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import logging
import os
import platform
import re
import subprocess
import sys
import time
import traceback
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from importlib import metadata
from typing import Any

import psutil  # type: ignore[import-untyped]

from bench.common import RESULTS_DIR, load_stack_env
from bench.context import FULL, QUICK, BenchContext
from bench.report import RunInfo, ScenarioResult, write_report

SCENARIOS: dict[int, tuple[str, str]] = {
    1: ("bench.s1_end_to_end", "end-to-end efficiency against the same reads"),
    2: ("bench.s2_seed_design", "against the seed's design (a pipeline run per 1,000 rows)"),
    3: ("bench.s3_memory", "worker memory stays flat (50k vs 500k rows)"),
    4: ("bench.s4_responsiveness", "API latency with three large exports running"),
    5: ("bench.s5_encoding", "CSV encoder vs bare csv.writer"),
    6: ("bench.s6_orchestration", "orchestration overhead from the workflow history"),
    7: ("bench.s7_xlsx", "XLSX encoder vs xlsxwriter constant memory"),
    8: ("bench.s8_parallel", "one export across two activity processes (parallelism 2 vs 1)"),
}

log = logging.getLogger("bench")


def parse_scenarios(text: str) -> list[int]:
    chosen = []
    for item in text.split(","):
        item = item.strip()
        if not item:
            continue
        if not item.isdigit() or int(item) not in SCENARIOS:
            raise argparse.ArgumentTypeError(
                f"unknown scenario {item!r}: choose among {', '.join(map(str, SCENARIOS))}"
            )
        chosen.append(int(item))
    return sorted(set(chosen))


def parser() -> argparse.ArgumentParser:
    listing = "\n".join(f"  {n}. {title}" for n, (_, title) in SCENARIOS.items())
    p = argparse.ArgumentParser(
        prog="python -m bench",
        description="Benchmarks of the durable export on the local stack (`make services`). "
        "Not tests: they never run in `make test` nor gate CI.",
        epilog=f"scenarios:\n{listing}",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "--quick",
        action="store_true",
        help="a small smoke run (small sizes, one repetition; under 2 minutes)",
    )
    p.add_argument(
        "--scenarios",
        type=parse_scenarios,
        default=list(SCENARIOS),
        help="comma-separated scenario numbers to run (default: all), e.g. 1,5",
    )
    p.add_argument(
        "--output",
        default=str(RESULTS_DIR),
        help="directory of the results (default: bench/results)",
    )
    p.add_argument(
        "--keep-data",
        action="store_true",
        help="keep the benchmark's database (durable_export_bench) on both engines, so the next "
        "run need not seed again; by default it is dropped at the end, since mongo-java-server "
        "holds everything in a heap shared with the tests",
    )
    return p


def machine_info() -> dict[str, Any]:
    cpu = "unknown CPU"
    try:
        for line in open("/proc/cpuinfo").read().splitlines():  # noqa: SIM115
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "cores": os.cpu_count(),
        "cpu": cpu,
        "memory_gib": psutil.virtual_memory().total / 2**30,
        "os": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "load_at_start": " ".join(f"{v:.2f}" for v in os.getloadavg()),
    }


def versions() -> dict[str, str]:
    from pymongo import MongoClient

    from devstack import installers

    found: dict[str, str] = {}
    for engine, variable in (
        ("FerretDB", "MONGODB_URI"),
        ("mongo-java-server", "SECOND_MONGODB_URI"),
    ):
        client: MongoClient[dict[str, Any]] = MongoClient(
            os.environ[variable], serverSelectionTimeoutMS=3000
        )
        try:
            info = client.admin.command("buildInfo")
            own = info.get("ferretdbVersion")
            found[engine] = (
                f"{own} (SQLite backend; announces MongoDB {info.get('version')})"
                if own
                else f"announces MongoDB {info.get('version')}"
            )
        except Exception as exc:  # report what is known, never fail on it
            found[engine] = f"unknown ({exc})"
        finally:
            client.close()
    pom = (installers.MONGO_JAVA_SERVER_DIR / "pom.xml").read_text()
    match = re.search(r"<artifactId>mongo-java-server</artifactId>\s*<version>([^<]+)", pom)
    if match:
        found["mongo-java-server"] = (
            f"{match.group(1)}, memory backend; {found['mongo-java-server']}"
        )
    try:
        temporal = subprocess.run(
            [str(installers.venv_binary("temporal")), "--version"],
            capture_output=True,
            text=True,
            check=False,
            timeout=10,
        ).stdout.strip()
    except OSError as exc:
        temporal = f"unknown ({exc})"
    found["Temporal dev server"] = f"{temporal} (SQLite file)"
    found["S3"] = f"versitygw {installers.VERSITYGW_VERSION} (POSIX backend)"
    found["Python packages"] = ", ".join(
        f"{name} {metadata.version(name)}"
        for name in ("temporalio", "pymongo", "fastapi", "uvicorn", "boto3")
    )
    return found


async def run_all(args: argparse.Namespace, stamp: str) -> RunInfo:
    from pathlib import Path

    from connections.temporal import connect
    from domain.settings import Settings

    started_at = datetime.now(UTC)
    t0 = time.perf_counter()
    machine = machine_info()
    temporal = await connect(Settings())
    ctx = BenchContext(
        sizes=QUICK if args.quick else FULL,
        quick=args.quick,
        stamp=stamp,
        results_dir=Path(args.output),
        temporal=temporal,
    )
    results: list[ScenarioResult] = []
    try:
        for number in args.scenarios:
            module_name, title = SCENARIOS[number]
            log.info("scenario %d: %s", number, title)
            began = time.perf_counter()
            module = importlib.import_module(module_name)
            run: Callable[[BenchContext], Awaitable[ScenarioResult]] = module.run
            try:
                result = await run(ctx)
            except Exception as exc:
                log.error("scenario %d failed:\n%s", number, traceback.format_exc())
                result = ScenarioResult(number, title)
                result.error = f"{type(exc).__name__}: {exc}"
            result.seconds = time.perf_counter() - began
            log.info("scenario %d done in %.0f s", number, result.seconds)
            results.append(result)
    finally:
        await ctx.aclose()
        from bench.product import remove_bench_objects

        remove_bench_objects(Settings())
        if not args.keep_data:
            from bench.data import drop_all

            for engine in ("ferretdb", "mongo-java-server"):
                drop_all(engine)
    machine["load_at_end"] = " ".join(f"{v:.2f}" for v in os.getloadavg())
    command = "make bench" if not args.quick else "python -m bench --quick"
    if args.scenarios != list(SCENARIOS):
        command += f" --scenarios {','.join(map(str, args.scenarios))}"
    return RunInfo(
        stamp=stamp,
        command=command,
        quick=args.quick,
        started_at=started_at.strftime("%Y-%m-%d %H:%M UTC"),
        seconds=time.perf_counter() - t0,
        machine=machine,
        versions=versions(),
        scenarios=results,
    )


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(name)s %(message)s", datefmt="%H:%M:%S"
    )
    logging.getLogger("httpx").setLevel(logging.WARNING)
    load_stack_env()
    stamp = datetime.now(UTC).strftime("%Y-%m-%d") + ("-quick" if args.quick else "")
    if args.scenarios != list(SCENARIOS) and not args.quick:
        stamp += "-partial"
    info = asyncio.run(run_all(args, stamp))
    from pathlib import Path

    json_path, md_path = write_report(info, Path(args.output))
    failed = [s.number for s in info.scenarios if s.error]
    print(f"\nreport: {md_path}\ndata:   {json_path}\ntook {info.seconds / 60:.1f} min")
    for scenario in info.scenarios:
        for outcome in scenario.outcomes:
            verdict = "met   " if outcome.met else "MISSED"
            print(f"  {verdict} {scenario.number}. {outcome.target.description}")
    if failed:
        print(f"scenarios that failed: {failed}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    code = main()
    sys.stdout.flush()
    sys.stderr.flush()
    # The Temporal SDK can abort the interpreter at exit (sdk-python #300); the report is
    # written by now, so leave without running the interpreter's shutdown.
    os._exit(code)
