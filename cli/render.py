"""How the CLI shows exports: tables for people, `--json` for scripts (rich)."""

from __future__ import annotations

import os
from datetime import datetime
from typing import Any

from rich import box
from rich.console import Console
from rich.filesize import decimal
from rich.table import Table

JsonObject = dict[str, Any]
PIPE_WIDTH = 160
"""Width of output that goes to a file or pipe: wide enough for an id and two times unwrapped."""


def console(*, stderr: bool = False) -> Console:
    """A console on stdout or stderr. Markup is off: what it prints is data (`[0]`, `:x:`); lines
    are not wrapped, so ids, tokens and links stay whole. Not a terminal and no `COLUMNS`: wide,
    so tables written to a pipe are not folded at 80 columns."""
    out = Console(stderr=stderr, highlight=False, markup=False, emoji=False, soft_wrap=True)
    if not out.is_terminal and "COLUMNS" not in os.environ:
        out.width = PIPE_WIDTH
    return out


def size(num_bytes: int | None) -> str:
    return "-" if num_bytes is None else decimal(num_bytes)


def _exact_size(num_bytes: int) -> str:
    """`1,057,788 (1.1 MB)`; small sizes without the redundant unit."""
    return f"{num_bytes:,}" + (f" ({size(num_bytes)})" if num_bytes >= 1000 else "")


def when(value: str | None) -> str:
    """An API timestamp as `2024-05-01 10:00:12Z`."""
    if not value:
        return "-"
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return value
    return moment.strftime("%Y-%m-%d %H:%M:%SZ")


def summary(view: JsonObject) -> str:
    """One line: `COMPLETED  120 rows, 3.4 kB, 1 part`."""
    parts = view.get("parts", 0)
    return (
        f"{view['status']}  {view.get('rows', 0):,} rows, {size(view.get('bytes'))}, "
        f"{parts} part{'s' if parts != 1 else ''}"
    )


def print_json(out: Console, data: Any) -> None:
    out.print_json(data=data, highlight=out.is_terminal)


def print_status(out: Console, view: JsonObject) -> None:
    table = Table(box=None, show_header=False, pad_edge=False)
    table.add_column(style="bold", no_wrap=True)
    table.add_column(overflow="fold")
    rate = view.get("rows_per_second")
    rows: list[tuple[str, str]] = [
        ("Export", view["export_id"]),
        ("Status", view["status"]),
        ("Strategy", view.get("strategy") or "-"),
        ("Rows", f"{view.get('rows', 0):,}"),
        ("Rows/s", f"{rate:,.1f}" if rate is not None else "-"),
        ("Bytes", _exact_size(int(view.get("bytes", 0)))),
        ("Parts", str(view.get("parts", 0))),
        ("Started", when(view.get("started_at"))),
        ("Finished", when(view.get("finished_at"))),
    ]
    if view.get("error"):
        rows.append(("Error", view["error"]))
    if view.get("warnings"):
        rows.append(
            ("Warnings", ", ".join(f"{kind}: {n:,}" for kind, n in view["warnings"].items()))
        )
    if view.get("download_url"):
        rows.append(("Link expires", when(view.get("download_expires_at"))))
    for key, value in rows:
        table.add_row(key, value)
    out.print(table)
    if view.get("download_url"):  # whole on one line, to copy it from a terminal
        out.print(f"Download {view['download_url']}")


def print_list(out: Console, page: JsonObject) -> None:
    items = page.get("items", [])
    if not items:
        out.print("no exports")
    else:
        table = Table(box=box.SIMPLE_HEAD, pad_edge=False, show_edge=False)
        for title in ("EXPORT", "STATUS", "STARTED", "FINISHED"):
            table.add_column(title, no_wrap=True)
        for item in items:
            table.add_row(
                item["export_id"],
                item["status"],
                when(item.get("started_at")),
                when(item.get("finished_at")),
            )
        out.print(table)
    if token := page.get("next_page_token"):
        out.print(f"next page: --page-token {token}")


def print_explain(out: Console, explained: JsonObject) -> None:
    out.print(f"strategy: {explained['strategy']}")
    if explained.get("format"):
        out.print(f"format: {explained['format']} ({explained.get('content_type')})")
    out.print(explained["explanation"])
    if explained.get("output"):
        out.print(f"output: {explained['output']}")
    out.print("first chunk's pipeline:")
    print_json(out, explained["pipeline"])
