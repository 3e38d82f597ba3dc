"""The export request options shared by `start` and `explain`, and the body they build.

The CLI checks only what it must to build the body (JSON syntax, the shape of a column); the API
validates the request and explains what it refuses.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any, get_args

from cli.errors import EXIT_USAGE, CliError
from domain.models import Compression, CsvPreset, ExportFormat

JsonObject = dict[str, Any]
DELIMITERS = {",": ",", ";": ";", "tab": "\t", "\\t": "\t"}


def parse_column(text: str) -> JsonObject:
    """`path` or `path:header` (the header may itself hold colons)."""
    path, sep, header = text.partition(":")
    if not path:
        raise argparse.ArgumentTypeError(f"{text!r}: expected PATH or PATH:HEADER")
    return {"path": path, "header": header} if sep else {"path": path}


def add_request_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--collection", required=True, help="the collection to aggregate")
    source = parser.add_mutually_exclusive_group()
    source.add_argument(
        "--pipeline-file",
        metavar="PATH",
        help="a JSON file holding the aggregation pipeline (a list of stages; Extended JSON "
        "such as {\"$date\": ...} for dates); '-' reads standard input",
    )
    source.add_argument(
        "--pipeline",
        metavar="JSON",
        help='the pipeline inline, e.g. \'[{"$match": {"status": "paid"}}]\' '
        "(default: the whole collection)",
    )
    parser.add_argument(
        "--column",
        action="append",
        dest="columns",
        type=parse_column,
        metavar="PATH[:HEADER]",
        help="an output column: a dotted field path and an optional header; repeat for each "
        "column, in order (default: the fields of the first rows)",
    )
    parser.add_argument(
        "--format", choices=get_args(ExportFormat), help="file format (default: csv)"
    )
    parser.add_argument(
        "--compression", choices=get_args(Compression), help="compression (default: none)"
    )
    parser.add_argument(
        "--filename", help="the name the file downloads as (default: derived from the export)"
    )
    parser.add_argument(
        "--delimiter",
        choices=sorted(DELIMITERS),
        help="CSV cell separator: ',' ';' or tab (default: ',')",
    )
    parser.add_argument(
        "--timezone",
        metavar="ZONE",
        help="IANA time zone for dates, e.g. Europe/Paris: CSV dates carry its offset, XLSX "
        "dates are its local time (default: UTC, written with Z)",
    )
    parser.add_argument(
        "--parallelism",
        type=_parallelism,
        metavar="N|auto",
        help="partitions that read and write the export at once, composed into one file in "
        "order (default: auto, one per EXPORT_PARTITION_ROWS rows; 1: serial)",
    )
    parser.add_argument(
        "--csv-preset",
        choices=get_args(CsvPreset),
        help="spreadsheet_semicolon: a UTF-8 BOM and ';' between cells, for spreadsheets in "
        "locales whose list separator is ';'",
    )


def _parallelism(text: str) -> int | str:
    if text == "auto":
        return text
    if text.isdigit() and int(text) >= 1:
        return int(text)
    raise argparse.ArgumentTypeError(f"{text!r} is neither a number from 1 nor 'auto'")


def _read_pipeline(args: argparse.Namespace) -> tuple[str, str] | None:
    """(where it came from, its JSON text), or None when no pipeline was given."""
    if args.pipeline is not None:
        return "--pipeline", args.pipeline
    if args.pipeline_file is None:
        return None
    if args.pipeline_file == "-":
        return "the pipeline on standard input", sys.stdin.read()
    try:
        return args.pipeline_file, Path(args.pipeline_file).read_text(encoding="utf-8")
    except OSError as exc:
        raise CliError(f"cannot read the pipeline file: {exc}", EXIT_USAGE) from exc


def _pipeline(args: argparse.Namespace) -> list[JsonObject] | None:
    read = _read_pipeline(args)
    if read is None:
        return None
    origin, text = read
    try:
        pipeline = json.loads(text)
    except json.JSONDecodeError as exc:
        raise CliError(f"{origin}: not valid JSON: {exc}", EXIT_USAGE) from exc
    if not isinstance(pipeline, list) or not all(isinstance(s, dict) for s in pipeline):
        raise CliError(
            f'{origin}: a pipeline is a JSON list of stages, like [{{"$match": {{}}}}]',
            EXIT_USAGE,
        )
    return pipeline


def request_body(args: argparse.Namespace) -> JsonObject:
    """The `POST /exports` body from the options; what is not given is left to the API."""
    body: JsonObject = {"collection": args.collection}
    optional = {
        "pipeline": _pipeline(args),
        "columns": args.columns,
        "format": args.format,
        "compression": args.compression,
        "filename": args.filename,
        "delimiter": DELIMITERS[args.delimiter] if args.delimiter else None,
        "timezone": args.timezone,
        "csv_preset": args.csv_preset,
        "parallelism": getattr(args, "parallelism", None),
    }
    body.update({key: value for key, value in optional.items() if value is not None})
    notify = {
        "webhook_url": getattr(args, "webhook", None),
        "email": getattr(args, "email", None),
    }
    if any(notify.values()):
        body["notify"] = {key: value for key, value in notify.items() if value}
    return body
