"""`export-worker --role all`: one workflow process and N activity processes, a dead child
replaced, all of them stopped with the supervisor."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import psutil  # type: ignore[import-untyped]
import pytest

from domain.settings import Settings
from tests.integration.export_harness import REPO_ROOT

pytestmark = [pytest.mark.services, pytest.mark.slow]


def _until(condition: Callable[[], bool], within: float, what: str) -> None:
    deadline = time.monotonic() + within
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out waiting for {what}")
        time.sleep(0.2)


def _roles(supervisor: psutil.Process) -> dict[int, str]:
    found = {}
    for child in supervisor.children():
        try:
            cmdline = child.cmdline()
        except psutil.Error:
            continue
        if "--role" in cmdline and child.status() != psutil.STATUS_ZOMBIE:
            found[child.pid] = cmdline[cmdline.index("--role") + 1]
    return found


def test_role_all_supervises_one_workflow_and_n_activity_processes(
    settings: Settings, tmp_path: Path
) -> None:
    env = dict(os.environ)
    env.update({k.upper(): str(v) for k, v in settings.model_dump().items() if v is not None})
    env["WORKER_ACTIVITY_PROCESSES"] = "2"
    log = tmp_path / "worker.log"
    with log.open("ab") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "workflows.worker", "--role", "all"],
            cwd=REPO_ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    supervisor = psutil.Process(process.pid)
    try:
        _until(
            lambda: (
                log.read_text().count("worker polling (activities)") == 2
                and "worker polling (workflows)" in log.read_text()
            ),
            120,
            "every child to poll",
        )
        roles = _roles(supervisor)
        assert sorted(roles.values()) == ["activities", "activities", "workflows"]

        victim = next(pid for pid, role in roles.items() if role == "activities")
        os.kill(victim, signal.SIGKILL)
        _until(
            lambda: (
                victim not in _roles(supervisor)
                and sorted(_roles(supervisor).values()) == ["activities", "activities", "workflows"]
            ),
            60,
            "the killed activity process to be replaced",
        )
        children = [psutil.Process(pid) for pid in _roles(supervisor)]
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=120)
    _, alive = psutil.wait_procs(children, timeout=30)
    assert alive == []
    assert process.returncode == 0
