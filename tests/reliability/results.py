"""The figures a reliability run produces, written as JSON for `scripts/reliability_report.py`.

Each test adds what it measured to a named section; at the end of the session the whole is
written to `.devstack/reliability/results-full.json` (a full `make reliability` run) or
`results-ci.json` (the part `make test` runs), so a CI run never overwrites a full run's figures.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from devstack.paths import REPO_ROOT, state_dir

FULL_ENV = "RELIABILITY_FULL"


def full_run() -> bool:
    """A full run (`make reliability`) rather than the CI-sized part `make test` runs."""
    return os.environ.get(FULL_ENV) == "1"


def logs_dir() -> Path:
    """Where the workers' logs of the fault scenarios are kept (one file per scenario)."""
    folder = state_dir() / "reliability" / "logs"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def results_path(full: bool) -> Path:
    folder = state_dir() / "reliability"
    folder.mkdir(parents=True, exist_ok=True)
    return folder / ("results-full.json" if full else "results-ci.json")


def _git_commit() -> str | None:
    try:
        done = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=REPO_ROOT,
            capture_output=True,
            text=True,
            check=False,
            timeout=10,
        )
    except OSError:
        return None
    return done.stdout.strip() or None


class Results:
    """Sections of figures, plus the outcome of every test that recorded one."""

    def __init__(self) -> None:
        self.started = time.monotonic()
        self.started_at = datetime.now(UTC)
        self.sections: dict[str, dict[str, Any]] = {}
        self.tests: dict[str, str] = {}
        self.durations: dict[str, float] = {}

    def section(self, name: str) -> dict[str, Any]:
        return self.sections.setdefault(name, {})

    def add(self, section: str, key: str, value: Any) -> None:
        self.section(section)[key] = value

    def append(self, section: str, key: str, value: Any) -> None:
        self.section(section).setdefault(key, []).append(value)

    def outcome(self, nodeid: str, outcome: str) -> None:
        self.tests[nodeid] = outcome

    def took(self, nodeid: str, seconds: float) -> None:
        """Time in a test's setup, call and teardown (fixtures it set up first included)."""
        self.durations[nodeid] = round(self.durations.get(nodeid, 0.0) + seconds, 2)

    def document(self) -> dict[str, Any]:
        full = full_run()
        return {
            "full": full,
            "started_at": self.started_at.isoformat(timespec="seconds"),
            "wall_seconds": round(time.monotonic() - self.started, 1),
            "git_commit": _git_commit(),
            "python": sys.version.split()[0],
            "machine": f"{platform.system()} {platform.machine()}, {os.cpu_count()} CPUs",
            "pytest_args": sys.argv[1:],
            "tests": self.tests,
            "test_seconds": round(sum(self.durations.values()), 1),
            "durations": self.durations,
            "sections": self.sections,
        }

    def write(self) -> Path:
        path = results_path(full_run())
        path.write_text(json.dumps(self.document(), indent=2, sort_keys=True, default=str) + "\n")
        return path
