"""`exportctl`: start, follow, list, cancel, explain and download exports from a shell, and
manage recurring exports (`exportctl schedule …`, in `cli.schedules`).

Connection options (`--api-url`, `--token`, `--sub`, `--tenant`) go before or after the command.
Results go to standard output (an export id, a table, `--json`); messages and progress bars go to
standard error, so `ID=$(exportctl start ...)` captures only the id.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import timedelta

from rich.console import Console

from cli.api_client import ApiClient
from cli.credentials import dev_secret, mint, parse_ttl, require_dev_secret
from cli.download import download
from cli.errors import EXIT_INTERRUPTED, EXIT_OK, EXIT_USAGE, ApiFailure, CliError
from cli.render import console, print_explain, print_json, print_list, print_status, summary
from cli.request_options import add_request_options, request_body
from cli.schedules import add_schedule_command
from cli.watch import watch
from domain.models import ExportStatus

DEFAULT_API_URL = "http://127.0.0.1:8000"
DEV_SUB, DEV_TENANT = "dev-user", "dev-tenant"
DEV_TOKEN_TTL = timedelta(hours=12)

EPILOG = """\
exit codes: 0 success; 1 error (API unreachable, server error, export not COMPLETED);
2 usage; 3 export not found; 4 refused by the API (invalid request, conflict, unauthorized).
"""


@dataclass
class Context:
    """One invocation: its arguments, its consoles and (made on first use) its API client."""

    args: argparse.Namespace
    out: Console
    err: Console
    _api: ApiClient | None = field(default=None, init=False)

    @property
    def api(self) -> ApiClient:
        if self._api is None:
            self._api = ApiClient(self.args.api_url, self._token())
        return self._api

    def _token(self) -> str | None:
        if self.args.token:
            return str(self.args.token)
        secret = dev_secret()
        if secret is None:
            return None
        self.err.print(
            f"exportctl: no --token: using a development token for {self.args.sub!r} in tenant "
            f"{self.args.tenant!r}, signed with {secret.source}"
        )
        return mint(secret.value, self.args.sub, self.args.tenant, DEV_TOKEN_TTL)

    @property
    def sent_token(self) -> bool:
        return self._api is not None and self._api.sent_token

    def close(self) -> None:
        if self._api is not None:
            self._api.close()


Handler = Callable[[Context], int]


# -- commands ---------------------------------------------------------------------------------


def _follow(ctx: Context, api: ApiClient, export_id: str) -> int:
    """Watch until the export ends; 0 only when it COMPLETED."""
    try:
        view = watch(api, export_id, ctx.err, ctx.args.interval)
    except KeyboardInterrupt:
        raise CliError(
            f"stopped watching; export {export_id} goes on (exportctl status {export_id})",
            EXIT_INTERRUPTED,
        ) from None
    ctx.out.print(summary(view))
    if view["status"] != ExportStatus.COMPLETED:
        raise CliError(f"export {export_id} {view['status']}: {view.get('error') or 'no reason'}")
    ctx.err.print(f"download it with: exportctl download {export_id}")
    return EXIT_OK


def cmd_start(ctx: Context) -> int:
    args = ctx.args
    body = request_body(args)  # a usage error ends the command before any request
    api = ctx.api
    response = api.start(body, args.idempotency_key)
    accepted = response.json()
    export_id = accepted["export_id"]
    ctx.out.print(export_id)
    verb = "reusing" if response.headers.get("Idempotent-Replayed") == "true" else "started"
    ctx.err.print(f"{verb} export {export_id} ({accepted['status']}): {accepted['strategy']}")
    if args.wait:
        return _follow(ctx, api, export_id)
    ctx.err.print(f"follow it with: exportctl watch {export_id}")
    return EXIT_OK


def cmd_watch(ctx: Context) -> int:
    api = ctx.api  # first: a development-token notice comes before the next line
    ctx.err.print(f"watching export {ctx.args.export_id} (Ctrl-C stops watching, not the export)")
    return _follow(ctx, api, ctx.args.export_id)


def cmd_status(ctx: Context) -> int:
    view = ctx.api.get(ctx.args.export_id)
    if ctx.args.json:
        print_json(ctx.out, view)
    else:
        print_status(ctx.out, view)
    return EXIT_OK


def cmd_list(ctx: Context) -> int:
    page = ctx.api.list(ctx.args.limit, ctx.args.page_token)
    if ctx.args.json:
        print_json(ctx.out, page)
    else:
        print_list(ctx.out, page)
    return EXIT_OK


def cmd_cancel(ctx: Context) -> int:
    accepted = ctx.api.cancel(ctx.args.export_id)
    ctx.out.print(
        f"cancel requested for export {accepted['export_id']} (it was {accepted['status']}): "
        "it aborts its upload and ends CANCELLED"
    )
    return EXIT_OK


def cmd_download(ctx: Context) -> int:
    where, size = download(ctx.api, ctx.args.export_id, ctx.args.output, ctx.err)
    (ctx.err if ctx.args.output == "-" else ctx.out).print(f"{where}  {size:,} bytes")
    return EXIT_OK


def cmd_explain(ctx: Context) -> int:
    body = request_body(ctx.args)
    explained = ctx.api.explain(body)
    if ctx.args.json:
        print_json(ctx.out, explained)
    else:
        print_explain(ctx.out, explained)
    return EXIT_OK


def cmd_token(ctx: Context) -> int:
    args = ctx.args
    secret = require_dev_secret()
    ctx.out.print(mint(secret.value, args.sub, args.tenant, args.ttl))
    ctx.err.print(
        f"a development token for {args.sub!r} in tenant {args.tenant!r}, valid {args.ttl}, "
        f"signed with {secret.source}"
    )
    return EXIT_OK


# -- the parser -------------------------------------------------------------------------------


def _ttl(text: str) -> timedelta:
    try:
        return parse_ttl(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from exc


def _add_connection_options(parser: argparse.ArgumentParser, *, in_command: bool) -> None:
    """On the main parser with their defaults; on each command with no default, so that given
    after the command they override and not given they leave the main parser's value."""

    def default(value: str) -> str:
        return argparse.SUPPRESS if in_command else value

    group = parser.add_argument_group("connection")
    group.add_argument(
        "--api-url",
        default=default(os.environ.get("EXPORTCTL_API_URL", DEFAULT_API_URL)),
        help=f"the API's base URL (env EXPORTCTL_API_URL; default {DEFAULT_API_URL})",
    )
    group.add_argument(
        "--token",
        default=default(os.environ.get("EXPORTCTL_TOKEN", "")),
        help="bearer token (env EXPORTCTL_TOKEN); without one, a development token is minted "
        "when API_JWT_SECRET (or .devstack/env) provides the secret",
    )
    group.add_argument(
        "--sub",
        default=default(DEV_SUB),
        help=f"user id of development tokens (default {DEV_SUB})",
    )
    group.add_argument(
        "--tenant",
        default=default(DEV_TENANT),
        help=f"tenant of development tokens (default {DEV_TENANT})",
    )


def _add_export_id(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("export_id", metavar="ID", help="the export id `start` printed")


def _add_json(parser: argparse.ArgumentParser, what: str) -> None:
    parser.add_argument("--json", action="store_true", help=f"print {what} as JSON")


def _add_interval(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--interval",
        type=float,
        default=1.0,
        metavar="SECONDS",
        help="how often to ask for progress (default %(default)s)",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="exportctl",
        description="Start, follow, list, cancel and download durable exports of MongoDB "
        "aggregations.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _add_connection_options(parser, in_command=False)
    common = argparse.ArgumentParser(add_help=False)
    _add_connection_options(common, in_command=True)
    commands = parser.add_subparsers(dest="command", title="commands", metavar="COMMAND")

    def command(
        name: str, summary: str, handler: Handler, details: str = ""
    ) -> argparse.ArgumentParser:
        sub = commands.add_parser(
            name,
            help=summary,
            description=f"{summary}{' ' + details if details else ''}",
            epilog=EPILOG,
            parents=[common],
        )
        sub.set_defaults(handler=handler)
        return sub

    start = command(
        "start",
        "Start an export.",
        cmd_start,
        "Prints the export id on standard output; with --wait, follows it with a progress "
        "bar and exits non-zero unless it COMPLETED.",
    )
    add_request_options(start)
    start.add_argument("--webhook", metavar="URL", help="POST the outcome to this URL (signed)")
    start.add_argument("--email", metavar="ADDRESS", help="e-mail the outcome to this address")
    start.add_argument(
        "--idempotency-key",
        metavar="KEY",
        help="repeat the request safely: the same key gives the same export",
    )
    start.add_argument("--wait", action="store_true", help="follow the export until it ends")
    _add_interval(start)

    status = command("status", "Show an export's progress and download link.", cmd_status)
    _add_export_id(status)
    _add_json(status, "the API's answer")

    watch_ = command(
        "watch",
        "Follow an export with a live progress bar until it ends.",
        cmd_watch,
        "Exits 0 when it COMPLETED, 1 when it FAILED or was CANCELLED.",
    )
    _add_export_id(watch_)
    _add_interval(watch_)

    listing = command("list", "List your exports, running ones first, newest first.", cmd_list)
    listing.add_argument("--limit", type=int, default=20, help="page size, 1 to 100 (default 20)")
    listing.add_argument("--page-token", metavar="TOKEN", help="the next page, as printed")
    _add_json(listing, "the page")

    cancel = command(
        "cancel",
        "Cancel an export.",
        cmd_cancel,
        "The export aborts its upload and ends CANCELLED.",
    )
    _add_export_id(cancel)

    down = command(
        "download",
        "Download a completed export.",
        cmd_download,
        "Follows the API's redirect to a fresh presigned link and streams the file to disk.",
    )
    _add_export_id(down)
    down.add_argument(
        "--output",
        "-o",
        metavar="PATH",
        help="a file or a directory to write to, or - for standard output "
        "(default: the export's file name in the current directory)",
    )

    explain = command(
        "explain",
        "Validate and plan an export without starting it.",
        cmd_explain,
        "Prints how the pipeline is read in chunks and the first chunk's pipeline.",
    )
    add_request_options(explain)
    _add_json(explain, "the API's answer")

    token = command(
        "token",
        "Mint a development token.",
        cmd_token,
        "Signs a token for --sub in --tenant with API_JWT_SECRET (from the environment or "
        ".devstack/env) and prints it: export EXPORTCTL_TOKEN=$(exportctl token).",
    )
    token.add_argument(
        "--ttl",
        type=_ttl,
        default=timedelta(hours=1),
        metavar="DURATION",
        help="lifetime: seconds, or 90s, 15m, 12h, 7d (default 1h)",
    )
    add_schedule_command(commands, common, EPILOG)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help (0) or a usage error (2), already printed by argparse
        return exc.code if isinstance(exc.code, int) else EXIT_USAGE
    if args.command is None:
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    ctx = Context(args, console(), console(stderr=True))
    handler: Handler = args.handler
    try:
        return handler(ctx)
    except CliError as exc:
        ctx.err.print(f"exportctl: error: {exc.message}")
        if isinstance(exc, ApiFailure) and exc.status == 401 and not ctx.sent_token:
            ctx.err.print("hint: pass --token or set EXPORTCTL_TOKEN")
        return exc.exit_code
    except KeyboardInterrupt:
        ctx.err.print("exportctl: interrupted")
        return EXIT_INTERRUPTED
    finally:
        ctx.close()


if __name__ == "__main__":
    sys.exit(main())
