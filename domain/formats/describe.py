"""The output a request asks for, in plain words (shown by `POST /exports/explain`)."""

from __future__ import annotations

from domain.models import ExportRequest
from domain.objects import file_extension

_DELIMITER_NAMES = {",": "','", ";": "';'", "\t": "tab"}


def describe_output(request: ExportRequest) -> str:
    """E.g. `CSV (.csv): ';' between cells, UTF-8 with a BOM, dates in Europe/Paris with their
    offset, formula guard on`."""
    dates = f"dates in {request.timezone}" if request.timezone is not None else "dates in UTC"
    if request.format == "csv":
        details = [
            f"{_DELIMITER_NAMES[request.csv_delimiter]} between cells",
            "UTF-8 with a BOM" if request.writes_bom else "UTF-8",
            dates + (" with their offset" if request.timezone is not None else " (Z)"),
            "formula guard on" if request.formula_guard else "formula guard off",
        ]
        if request.csv_preset is not None:
            details.append(f"preset {request.csv_preset}")
        name = "CSV"
    elif request.format == "xlsx":
        details = [
            "typed cells (numbers, booleans, dates), other values as CSV text",
            f"Excel dates in {request.timezone or 'UTC'}",
            "a new sheet every 1,048,576 rows",
            "cells over 32,767 characters truncated",
        ]
        name = "XLSX"
    else:
        details = ["one relaxed Extended JSON document per line"]
        name = "JSON Lines"
    if request.compression == "gzip":
        details.append("gzip")
    return f"{name} ({file_extension(request)}): " + ", ".join(details)
