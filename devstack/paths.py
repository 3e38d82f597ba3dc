"""Where the stack keeps its cache (outside the checkout) and its state (inside, git-ignored)."""

from __future__ import annotations

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent


def cache_dir() -> Path:
    """Built binaries and classpaths, shared by every checkout on this machine."""
    default = Path.home() / ".cache" / "durable-export"
    path = Path(os.environ.get("DURABLE_EXPORT_CACHE", default))
    path.mkdir(parents=True, exist_ok=True)
    return path


def state_dir() -> Path:
    """Data, logs, pids and the env file of this checkout's running stack."""
    path = Path(os.environ.get("DEVSTACK_DIR", REPO_ROOT / ".devstack"))
    for sub in ("logs", "pids", "data"):
        (path / sub).mkdir(parents=True, exist_ok=True)
    return path
