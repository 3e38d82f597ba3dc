"""`exportctl watch`: a live progress bar of one export until it ends.

The API reports rows, bytes and parts done but no total (a pipeline's row count is not known
before it has run), so the bar is indeterminate while the export runs and fills at completion.
A Temporal or network hiccup does not end the watch: it retries for a while, then gives up.
"""

from __future__ import annotations

import time

from rich.console import Console, RenderableType
from rich.progress import (
    BarColumn,
    Progress,
    SpinnerColumn,
    Task,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)

from cli.api_client import ApiClient, JsonObject
from cli.errors import ApiFailure, CliError
from cli.render import size
from domain.models import ExportStatus

MAX_CONSECUTIVE_FAILURES = 10


class _Spinner(SpinnerColumn):
    """Stops spinning once the export has ended, whether or not the bar is full."""

    def render(self, task: Task) -> RenderableType:
        return self.finished_text if task.fields.get("ended") else super().render(task)


def _progress(err: Console) -> Progress:
    return Progress(
        _Spinner(finished_text="•"),
        TextColumn("{task.description:<10}"),
        BarColumn(bar_width=30),
        TextColumn("{task.completed:>12,.0f} rows"),
        TextColumn("{task.fields[rate]:>14}"),
        TextColumn("{task.fields[size]:>10}"),
        TextColumn("{task.fields[parts]:>9}"),
        TimeElapsedColumn(),
        console=err,
        refresh_per_second=4,
    )


def _show(progress: Progress, task: TaskID, view: JsonObject) -> None:
    rows = int(view.get("rows", 0))
    rate = view.get("rows_per_second")
    parts = int(view.get("parts", 0))
    status = ExportStatus(view["status"])
    done = status == ExportStatus.COMPLETED
    progress.update(
        task,
        ended=status.is_terminal,
        description=view["status"],
        completed=rows,
        total=max(rows, 1) if done else None,
        rate=f"{rate:,.0f} rows/s" if rate is not None else "- rows/s",
        size=size(view.get("bytes")),
        parts=f"{parts} part{'s' if parts != 1 else ''}",
    )


def _is_transient(exc: CliError) -> bool:
    """A server error or an unreachable API: worth asking again. A 4xx answer is not."""
    return not isinstance(exc, ApiFailure) or exc.status >= 500


def watch(api: ApiClient, export_id: str, err: Console, interval: float) -> JsonObject:
    """Poll `GET /exports/{id}` every `interval` seconds, showing progress on `err`, until the
    export is COMPLETED, FAILED or CANCELLED; its last view."""
    failures = 0
    with _progress(err) as progress:
        task = progress.add_task("PENDING", total=None, rate="", size="", parts="", ended=False)
        while True:
            try:
                view = api.get(export_id)
            except CliError as exc:
                failures += 1
                if not _is_transient(exc) or failures >= MAX_CONSECUTIVE_FAILURES:
                    raise
                progress.update(task, description="waiting for the API")
                time.sleep(interval)
                continue
            failures = 0
            _show(progress, task, view)
            if ExportStatus(view["status"]).is_terminal:
                return view
            time.sleep(interval)
