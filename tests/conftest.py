"""Shared fixtures: the local stack's endpoints (from `.devstack/env`) and clients for it."""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import pytest

from domain.settings import Settings

REPO_ROOT = Path(__file__).resolve().parent.parent
SHARED_DATA = REPO_ROOT.parent / "shared" / "data"


def _load_devstack_env() -> None:
    """Let a plain `pytest` reach the stack `make services` started: its env file fills the gaps."""
    env_file = Path(os.environ.get("DEVSTACK_DIR", REPO_ROOT / ".devstack")) / "env"
    if not env_file.exists():
        return
    for line in env_file.read_text().splitlines():
        if line.startswith("export ") and "=" in line:
            key, _, value = line.removeprefix("export ").partition("=")
            os.environ.setdefault(key.strip(), value.strip())


_load_devstack_env()


@pytest.fixture
def unique_name() -> str:
    """A name no other test (or earlier run) uses: for collections, keys and workflow ids."""
    return f"t{uuid.uuid4().hex[:12]}"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.skip(f"the shared sample data folder {SHARED_DATA} is absent")
    return SHARED_DATA


@pytest.fixture(scope="session")
def settings() -> Settings:
    """The stack's settings, with a task queue of this test session's own, so that no other
    worker (say, one `make up` started) takes the tests' workflows."""
    return Settings(temporal_task_queue=f"tests-{uuid.uuid4().hex[:8]}")
