"""Locale-aware CSV: delimiter, time zone, the spreadsheet preset; the defaults stay as they were."""

from __future__ import annotations

import argparse
import csv
import io
from datetime import UTC, datetime

import pytest
from bson import DatetimeMS
from pydantic import ValidationError

from cli.request_options import add_request_options, request_body
from domain.formats.csv_encoder import UTF8_BOM
from domain.formats.describe import describe_output
from domain.formats.encoding import EncodingSpec, encode_part
from domain.models import Column, ExportRequest

COLUMNS = [Column(path="name"), Column(path="when"), Column(path="n")]
ROWS = [
    {"name": "a;b", "when": datetime(2024, 7, 1, 10, 0, tzinfo=UTC), "n": 1.5},
    {"name": "tab\there", "when": datetime(2024, 1, 15, 10, 0, 0, 123000), "n": -2},
]


def csv_text(request: ExportRequest) -> str:
    body = encode_part(EncodingSpec.of(request), COLUMNS, ROWS, first_part=True)
    return body.decode("utf-8")


def test_the_defaults_write_exactly_what_they_wrote_before() -> None:
    request = ExportRequest(collection="c")
    assert EncodingSpec.of(request) == EncodingSpec()
    assert csv_text(request) == (
        "name,when,n\r\n"
        "a;b,2024-07-01T10:00:00.000Z,1.5\r\n"
        "tab\there,2024-01-15T10:00:00.123Z,-2\r\n"
    )


@pytest.mark.parametrize("delimiter", [";", "\t"])
def test_a_delimiter_separates_cells_and_quotes_cells_holding_it(delimiter: str) -> None:
    text = csv_text(ExportRequest(collection="c", delimiter=delimiter))
    assert text.splitlines()[0] == delimiter.join(["name", "when", "n"])
    parsed = list(csv.reader(io.StringIO(text, newline=""), delimiter=delimiter))
    assert parsed[1] == ["a;b", "2024-07-01T10:00:00.000Z", "1.5"]
    assert parsed[2][0] == "tab\there"
    quoted = '"a;b"' if delimiter == ";" else '"tab\there"'
    assert quoted in text


def test_dates_in_a_time_zone_carry_its_offset_on_that_date() -> None:
    text = csv_text(ExportRequest(collection="c", timezone="Europe/Paris"))
    lines = text.splitlines()
    assert lines[1] == "a;b,2024-07-01T12:00:00.000+02:00,1.5"  # summer time
    assert lines[2] == "tab\there,2024-01-15T11:00:00.123+01:00,-2"  # naive means UTC


def test_a_zone_leaves_dates_without_a_datetime_form_as_extended_json() -> None:
    spec = EncodingSpec(timezone="America/New_York")
    far = DatetimeMS(2**62)
    body = encode_part(spec, [Column(path="d")], [{"d": far}], first_part=True)
    assert body.decode().splitlines()[1].startswith('"{""$date""')


def test_the_spreadsheet_preset_is_a_bom_and_semicolons() -> None:
    text = csv_text(ExportRequest(collection="c", csv_preset="spreadsheet_semicolon"))
    assert text.startswith(UTF8_BOM + "name;when;n\r\n")
    assert '"a;b";2024-07-01T10:00:00.000Z;1.5\r\n' in text
    agreeing = ExportRequest(collection="c", csv_preset="spreadsheet_semicolon", delimiter=";")
    assert csv_text(agreeing) == text


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"timezone": "Mars/Olympus"}, "not an IANA time zone"),
        ({"timezone": "../../etc/passwd"}, "not an IANA time zone"),
        ({"timezone": "localtime"}, "not an IANA time zone"),
        ({"delimiter": "|"}, "delimiter"),
        ({"format": "jsonl", "delimiter": ";"}, "applies to csv exports only"),
        ({"format": "xlsx", "csv_preset": "spreadsheet_semicolon"}, "applies to csv"),
        ({"csv_preset": "spreadsheet_semicolon", "delimiter": ","}, "leave one of them out"),
        ({"format": "xlsx", "compression": "gzip"}, "compressed already"),
    ],
)
def test_options_that_cannot_be_honoured_are_refused(fields: dict[str, str], message: str) -> None:
    with pytest.raises(ValidationError, match=message.replace("(", r"\(")):
        ExportRequest.model_validate({"collection": "c", **fields})


def test_explain_describes_the_output() -> None:
    request = ExportRequest(
        collection="c", csv_preset="spreadsheet_semicolon", timezone="Europe/Paris"
    )
    assert describe_output(request) == (
        "CSV (.csv): ';' between cells, UTF-8 with a BOM, dates in Europe/Paris with their "
        "offset, formula guard on, preset spreadsheet_semicolon"
    )
    assert describe_output(ExportRequest(collection="c")).startswith(
        "CSV (.csv): ',' between cells, UTF-8, dates in UTC (Z)"
    )
    assert describe_output(ExportRequest(collection="c", format="xlsx")).startswith("XLSX (.xlsx)")


def test_the_cli_builds_the_options_into_the_body() -> None:
    parser = argparse.ArgumentParser()
    add_request_options(parser)
    args = parser.parse_args(
        ["--collection", "c", "--delimiter", "tab", "--timezone", "Asia/Tokyo", "--format", "csv"]
    )
    assert request_body(args) == {
        "collection": "c",
        "format": "csv",
        "delimiter": "\t",
        "timezone": "Asia/Tokyo",
    }
    preset = parser.parse_args(["--collection", "c", "--csv-preset", "spreadsheet_semicolon"])
    assert request_body(preset) == {"collection": "c", "csv_preset": "spreadsheet_semicolon"}
    assert "delimiter" not in request_body(parser.parse_args(["--collection", "c"]))
