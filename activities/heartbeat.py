"""Heartbeats from a side thread, so a long query that has not yet returned a row still shows
Temporal that the worker is alive; a killed worker stops them and its part is retried elsewhere."""

from __future__ import annotations

import contextlib
import contextvars
import threading
from collections.abc import Callable, Iterator
from typing import Any

from temporalio import activity


@contextlib.contextmanager
def heartbeating(details: Callable[[], tuple[Any, ...]], every: float = 2.0) -> Iterator[None]:
    """Heartbeat `details()` every `every` seconds until the block ends."""
    done = threading.Event()
    context = contextvars.copy_context()  # the activity's context, for activity.heartbeat

    def beat() -> None:
        while not done.wait(every):
            context.run(lambda: activity.heartbeat(*details()))

    ticker = threading.Thread(target=beat, name="heartbeat", daemon=True)
    ticker.start()
    try:
        yield
    finally:
        done.set()
        ticker.join()
