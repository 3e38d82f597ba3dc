"""`exportctl schedule …`: recurring exports (create, list, show, update, pause, resume, run,
delete). Results go to standard output (`create` prints the schedule id), messages to stderr."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from rich import box
from rich.table import Table

from cli.errors import EXIT_OK, EXIT_USAGE, CliError
from cli.render import print_json, when
from cli.request_options import add_request_options, request_body

if TYPE_CHECKING:
    from cli.main import Context

JsonObject = dict[str, Any]
Handler = Callable[["Context"], int]


def _timing(args: argparse.Namespace, *, required: bool) -> JsonObject:
    body: JsonObject = {}
    if args.cron is not None:
        body["cron"] = args.cron
    if args.every is not None:
        body["interval_seconds"] = args.every
    if required and not body:
        raise CliError("give --cron or --every", EXIT_USAGE)
    if args.schedule_timezone is not None:
        body["timezone"] = args.schedule_timezone
    return body


def when_text(view: JsonObject) -> str:
    if view.get("cron"):
        return f"cron '{view['cron']}' ({view['timezone']})"
    return f"every {view['interval_seconds']} s"


def _print_view(ctx: Context, view: JsonObject) -> None:
    if ctx.args.json:
        print_json(ctx.out, view)
        return
    out = ctx.out
    export = view["export"]
    out.print(f"schedule  {view['schedule_id']}")
    out.print(f"export    {export['collection']} as {export.get('format', 'csv')}")
    out.print(f"when      {when_text(view)}")
    out.print(f"state     {'PAUSED' if view['paused'] else 'active'}")
    out.print(f"next      {', '.join(when(t) for t in view['next_runs'][:3]) or '-'}")
    out.print(
        f"runs      {view['runs']} started, {view['skipped_overlapping']} skipped (overlap), "
        f"{view['missed_catchup_window']} missed (outside the catch-up window)"
    )
    for run in view["recent_runs"]:
        out.print(f"  {when(run['scheduled_at'])}  {run['export_id']}")


def cmd_create(ctx: Context) -> int:
    args = ctx.args
    body: JsonObject = {"export": request_body(args), **_timing(args, required=True)}
    if args.paused:
        body["paused"] = True
    response = ctx.api.create_schedule(body, args.idempotency_key)
    view = response.json()
    ctx.out.print(view["schedule_id"])
    verb = "reusing" if response.headers.get("Idempotent-Replayed") == "true" else "created"
    ctx.err.print(f"{verb} schedule {view['schedule_id']}: {when_text(view)}")
    return EXIT_OK


def cmd_list(ctx: Context) -> int:
    listed = ctx.api.list_schedules()
    if ctx.args.json:
        print_json(ctx.out, listed)
        return EXIT_OK
    table = Table(box=box.SIMPLE)
    for column in ("schedule", "collection", "when", "state", "next run", "runs"):
        table.add_column(column)
    for view in listed["items"]:
        table.add_row(
            view["schedule_id"],
            view["export"]["collection"],
            when_text(view),
            "PAUSED" if view["paused"] else "active",
            when(view["next_runs"][0]) if view["next_runs"] else "-",
            str(view["runs"]),
        )
    ctx.out.print(table)
    return EXIT_OK


def cmd_show(ctx: Context) -> int:
    _print_view(ctx, ctx.api.get_schedule(ctx.args.schedule_id))
    return EXIT_OK


def cmd_update(ctx: Context) -> int:
    args = ctx.args
    body = _timing(args, required=False)
    if args.collection is not None:
        body["export"] = request_body(args)
    if not body:
        raise CliError(
            "nothing to change: give --cron, --every, --schedule-timezone or "
            "--collection with the export's options",
            EXIT_USAGE,
        )
    _print_view(ctx, ctx.api.update_schedule(args.schedule_id, body))
    return EXIT_OK


def _action(action: str) -> Handler:
    def handler(ctx: Context) -> int:
        answer = ctx.api.schedule_action(ctx.args.schedule_id, action)
        if action == "run":
            ctx.out.print(answer["message"])
        else:
            _print_view(ctx, answer)
        return EXIT_OK

    return handler


def cmd_delete(ctx: Context) -> int:
    ctx.api.delete_schedule(ctx.args.schedule_id)
    ctx.out.print(f"deleted schedule {ctx.args.schedule_id} (a run in progress finishes)")
    return EXIT_OK


def _add_timing(parser: argparse.ArgumentParser) -> None:
    timing = parser.add_mutually_exclusive_group()
    timing.add_argument("--cron", metavar="EXPR", help="five-field cron, e.g. '0 7 * * MON'")
    timing.add_argument("--every", type=int, metavar="SECONDS", help="a fixed interval")
    parser.add_argument(
        "--schedule-timezone",
        metavar="ZONE",
        help="IANA zone of the cron expression and of each run's date (default UTC)",
    )


def add_schedule_command(commands: Any, common: argparse.ArgumentParser, epilog: str) -> None:
    """`exportctl schedule SUBCOMMAND …` under the main parser's `commands`."""
    schedule = commands.add_parser(
        "schedule",
        help="Recurring exports: create, list, show, update, pause, resume, run, delete.",
        description="Recurring exports backed by Temporal Schedules. Each run is an ordinary "
        "export (see `exportctl list`) whose filename carries the run's date.",
        epilog=epilog,
        parents=[common],
    )
    schedule.set_defaults(handler=lambda ctx: _usage(schedule))
    subs = schedule.add_subparsers(dest="schedule_command", metavar="SUBCOMMAND")

    def sub(name: str, summary: str, handler: Handler) -> argparse.ArgumentParser:
        parser: argparse.ArgumentParser = subs.add_parser(
            name, help=summary, description=summary, epilog=epilog, parents=[common]
        )
        parser.set_defaults(handler=handler)
        return parser

    def with_id(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
        parser.add_argument("schedule_id", metavar="ID", help="the id `schedule create` printed")
        return parser

    create = sub("create", "Create a recurring export; prints its id.", cmd_create)
    add_request_options(create)
    _add_timing(create)
    create.add_argument("--paused", action="store_true", help="create it paused")
    create.add_argument("--idempotency-key", metavar="KEY", help="the same key, the same schedule")

    listing = sub("list", "List your schedules.", cmd_list)
    listing.add_argument("--json", action="store_true", help="print the API's answer")

    show = with_id(sub("show", "Show a schedule, its next and recent runs.", cmd_show))
    show.add_argument("--json", action="store_true", help="print the API's answer")

    update = with_id(sub("update", "Change a schedule's timing or export.", cmd_update))
    _add_timing(update)
    add_request_options(update)
    update._option_string_actions["--collection"].required = False  # only to replace the export
    update.add_argument("--json", action="store_true", help="print the API's answer")

    for name, summary in (
        ("pause", "Pause a schedule."),
        ("resume", "Resume a paused schedule."),
        ("run", "Run a schedule now (nothing starts while a run is still going)."),
    ):
        parser = with_id(sub(name, summary, _action(name)))
        parser.add_argument("--json", action="store_true", help="print the API's answer")

    with_id(sub("delete", "Delete a schedule.", cmd_delete))


def _usage(parser: argparse.ArgumentParser) -> int:
    parser.print_help()
    return EXIT_USAGE
