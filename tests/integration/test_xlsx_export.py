"""XLSX exports on the real stack: the workbook holds the CSV export's values with their types,
survives killed workers byte for byte, continues on a new sheet past 1,048,576 rows, truncates
cells Excel cannot hold, and opens in LibreOffice."""

from __future__ import annotations

import asyncio
import csv
import io
import os
import re
import shutil
import subprocess
import time
import zipfile
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import openpyxl
import pytest
from temporalio.client import WorkflowFailureError

from domain.export_policy import ExportPolicy
from domain.formats.xlsx_cells import TRUNCATION_MARKER
from domain.formats.xlsx_package import MAX_CELL_CHARS, MAX_ROWS
from domain.models import Column, ExportRequest, ExportStatus
from domain.settings import Settings
from tests.integration import export_harness as h
from tests.integration.test_export_workflow import documents
from workflows.export_workflow import ExportWorkflow

pytestmark = pytest.mark.slow

MIB = 1024 * 1024


@pytest.fixture
def collection(settings: Settings, unique_name: str) -> Iterator[str]:
    yield unique_name
    h.drop(settings, unique_name)


@pytest.fixture
def isolated(settings: Settings, unique_name: str) -> Settings:
    """Its own task queue, so no other worker (in-process or left over) takes these tasks."""
    return settings.model_copy(update={"temporal_task_queue": f"xlsx-{unique_name}"})


async def _export(settings: Settings, request: ExportRequest) -> tuple[Any, bytes]:
    export = h.new_export(request)
    async with h.in_process_worker(settings) as client:
        progress = await (await h.start(client, settings, export)).result()
    assert progress.status == ExportStatus.COMPLETED
    return progress, h.fetch_object(settings, progress.object_key)


def _rows(body: bytes) -> dict[str, list[tuple[Any, ...]]]:
    """Each sheet's rows, padded to the header's width (a read-only openpyxl row ends at its
    last cell, and null values have no cell)."""
    workbook = openpyxl.load_workbook(io.BytesIO(body), read_only=True)
    sheets = {}
    for ws in workbook.worksheets:
        rows = list(ws.iter_rows(values_only=True))
        width = len(rows[0])
        sheets[ws.title] = [row + (None,) * (width - len(row)) for row in rows]
    return sheets


def _csv_rows(body: bytes) -> list[list[str]]:
    return list(csv.reader(io.StringIO(body.decode("utf-8"), newline="")))


def _same_value(cell: Any, text: str) -> bool:
    """An XLSX cell (as openpyxl reads it) holds what the CSV cell says, in the right type."""
    if cell is None:
        return text == ""
    if isinstance(cell, bool):
        return text == ("true" if cell else "false")
    if isinstance(cell, int):
        return text == str(cell)
    if isinstance(cell, float):
        return float(text) == cell
    if isinstance(cell, datetime):  # an Excel date: the CSV's UTC instant to the millisecond
        instant = datetime.fromisoformat(text.replace("Z", "+00:00"))
        return abs(instant.replace(tzinfo=None) - cell).total_seconds() < 0.0005
    return bool(cell == text)


async def test_an_xlsx_export_holds_the_csv_exports_values_with_their_types(
    settings: Settings, collection: str
) -> None:
    h.seed(
        settings,
        collection,
        ({**doc, "flag": doc["n"] % 3 == 0} for doc in documents(2_000)),
    )
    pipeline = [{"$match": {"n": {"$gte": 0}}}]
    base = {"collection": collection, "pipeline": pipeline, "formula_guard": False}
    csv_progress, csv_body = await _export(settings, ExportRequest.model_validate(base))
    xlsx_progress, xlsx_body = await _export(
        settings, ExportRequest.model_validate({**base, "format": "xlsx"})
    )
    assert xlsx_progress.rows == csv_progress.rows == 2_000
    assert xlsx_progress.object_key.endswith(".xlsx")
    table = _csv_rows(csv_body)
    (sheet,) = _rows(xlsx_body).values()
    assert list(sheet[0]) == table[0]  # the same frozen columns, in the same order
    assert len(sheet) == len(table) == 2_001
    mismatches = [
        (r, c, cell, text)
        for r, (row, line) in enumerate(zip(sheet[1:], table[1:], strict=True), start=2)
        for c, (cell, text) in enumerate(zip(row, line, strict=True))
        if not _same_value(cell, text)
    ]
    assert mismatches == []
    kinds: dict[str, set[type]] = {title: set() for title in table[0]}
    for row in sheet[1:]:
        for title, cell in zip(table[0], row, strict=True):
            kinds[title].add(type(cell))
    assert kinds["n"] == {int}
    assert kinds["price"] == {float}
    assert kinds["flag"] == {bool}
    assert kinds["when"] == {datetime}
    assert kinds["score"] == {float, type(None)}
    assert kinds["_id"] == kinds["name"] == kinds["address.city"] == kinds["tags"] == {str}


def _soffice() -> str:
    found = shutil.which("soffice") or shutil.which("libreoffice")
    if found is None:
        if os.environ.get("CI"):
            pytest.fail("LibreOffice is not installed: .ci/run installs libreoffice-calc-nogui")
        pytest.skip("LibreOffice is not installed (apt-get install libreoffice-calc-nogui)")
    return found


@pytest.mark.libreoffice
async def test_libreoffice_reads_the_workbook_as_the_csv_export(
    settings: Settings, collection: str, tmp_path: Path
) -> None:
    soffice = _soffice()
    h.seed(settings, collection, ({**doc, "flag": doc["n"] % 2 == 0} for doc in documents(300)))
    columns = [
        Column(path=p) for p in ["_id", "n", "name", "score", "when", "price", "flag", "tags"]
    ]
    base = {"collection": collection, "columns": columns, "formula_guard": False}
    _, csv_body = await _export(settings, ExportRequest.model_validate(base))
    _, xlsx_body = await _export(settings, ExportRequest.model_validate({**base, "format": "xlsx"}))
    source = tmp_path / "export.xlsx"
    source.write_bytes(xlsx_body)
    await asyncio.to_thread(
        subprocess.run,
        [
            soffice,
            f"-env:UserInstallation=file://{tmp_path}/profile",
            "--headless",
            "--convert-to",
            "csv:Text - txt - csv (StarCalc):44,34,76,1",
            "--outdir",
            str(tmp_path / "out"),
            str(source),
        ],
        check=True,
        capture_output=True,
        timeout=300,
    )
    converted = _csv_rows((tmp_path / "out" / "export.csv").read_bytes())
    expected = _csv_rows(csv_body)
    assert converted[0] == expected[0]
    assert len(converted) == len(expected) == 301

    def same(shown: str, text: str) -> bool:
        if re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", text):
            return shown == text.replace("T", " ").removesuffix("Z")
        if text in ("true", "false"):
            return shown.lower() == text
        if re.fullmatch(r"-?\d+(\.\d+)?", text):
            return float(shown) == float(text)
        return shown == text

    mismatches = [
        (shown, text)
        for got, want in zip(converted[1:], expected[1:], strict=True)
        for shown, text in zip(got, want, strict=True)
        if not same(shown, text)
    ]
    assert mismatches == []


async def test_killing_the_worker_twice_mid_xlsx_export_gives_the_same_bytes(
    isolated: Settings, collection: str, tmp_path: Path
) -> None:
    h.seed(isolated, collection, documents(16_000, pad=1500))  # about 3 parts of 5 MiB
    settings = isolated.model_copy(update={"part_size_bytes": 5 * MIB})
    request = ExportRequest(collection=collection, format="xlsx")
    reference_progress, reference = await _export(settings, request)
    assert reference_progress.parts >= 3

    export = h.new_export(request)
    from connections.temporal import connect

    client = await connect(settings)
    handle = await h.start(client, settings, export)
    log = tmp_path / "worker.log"
    kills = []
    for parts_before_kill in (1, 2):
        with h.worker_process(settings, log) as worker:
            progress = await h.wait_for(
                handle, lambda p, n=parts_before_kill: p.parts >= n, within=240
            )
            worker.kill()  # SIGKILL: the part in flight is lost, its carry never recorded
            kills.append(progress.parts)
    resumed_at = time.monotonic()
    with h.worker_process(settings, log):
        result = await handle.result()
    assert result.status == ExportStatus.COMPLETED
    assert kills == sorted(kills)
    assert h.fetch_object(settings, result.object_key) == reference
    assert result.rows == 16_000
    assert h.uploads_under(settings, result.object_key) == []
    print(f"resumed after the last kill and finished in {time.monotonic() - resumed_at:.1f} s")


@pytest.mark.second_engine
async def test_past_excels_row_limit_the_rows_continue_on_a_second_sheet(
    settings: Settings, unique_name: str
) -> None:
    """1,100,000 rows of 1,100,000 small documents, on mongo-java-server.

    Not 1,100 documents unwinding 1,000-element arrays: resuming an `$unwind` needs
    `includeArrayIndex`, which FerretDB 1.24 lacks, and mongo-java-server answers a part's query
    in one reply capped at 48 MB, which 1.1 million unwound rows exceed (77 MB measured); a
    `$project` keeps these rows at about 30 bytes each. FerretDB would take minutes to read them."""
    settings = settings.model_copy(
        update={"mongodb_uri": os.environ.get("SECOND_MONGODB_URI", "mongodb://127.0.0.1:27018/")}
    )
    collection = unique_name
    h.seed(settings, collection, ({"_id": n, "k": n % 1000} for n in range(1_100_000)))
    try:
        request = ExportRequest(
            collection=collection,
            pipeline=[{"$project": {"k": 1}}],
            columns=[Column(path="_id"), Column(path="k")],
            format="xlsx",
        )
        progress, body = await _export(settings, request)
    finally:
        h.drop(settings, collection)
    assert progress.rows == 1_100_000
    archive = zipfile.ZipFile(io.BytesIO(body))
    assert archive.testzip() is None
    pair = re.compile(rb'<row r="(\d+)"><c r="A\1"><v>(\d+)</v></c><c r="B\1"><v>(\d+)</v></c>')
    values: list[tuple[int, int]] = []
    counts = []
    for name in ("xl/worksheets/sheet1.xml", "xl/worksheets/sheet2.xml"):
        xml = archive.read(name)
        assert b'<row r="1"><c r="A1" s="1" t="inlineStr"><is><t>_id</t></is></c>' in xml
        rows = [(int(n), int(k)) for _, n, k in pair.findall(xml)]
        counts.append(len(rows) + 1)  # and the header
        values += rows
    assert counts == [MAX_ROWS, 1_100_000 - (MAX_ROWS - 1) + 1]
    assert values == [(n, n % 1000) for n in range(1_100_000)]
    workbook = openpyxl.load_workbook(io.BytesIO(body), read_only=True)
    assert workbook.sheetnames == ["Sheet1", "Sheet2"]
    print(f"{progress.parts} part(s), {len(body):,} bytes")


async def test_a_40000_character_cell_is_truncated_and_counted(
    settings: Settings, collection: str
) -> None:
    h.seed(settings, collection, [{"_id": 1, "text": "x" * 40_000}, {"_id": 2, "text": "short"}])
    request = ExportRequest(collection=collection, format="xlsx")
    progress, body = await _export(settings, request)
    assert progress.warnings == {"cells_truncated": 1}
    rows = _rows(body)["Sheet1"]
    text_column = rows[0].index("text")
    assert len(rows[1][text_column]) == MAX_CELL_CHARS
    assert rows[1][text_column].endswith(TRUNCATION_MARKER)
    assert rows[2][text_column] == "short"


async def test_more_columns_than_a_sheet_holds_is_refused_at_planning(
    settings: Settings, collection: str
) -> None:
    """Reachable where an operator raised EXPORT_MAX_COLUMNS above Excel's 16,384 columns."""
    h.seed(settings, collection, [{"_id": 1, **{f"f{i}": i for i in range(16_400)}}])
    wide = ExportPolicy.of(settings).model_copy(update={"export_max_columns": 20_000})
    export = h.new_export(ExportRequest(collection=collection, format="xlsx"), policy=wide)
    async with h.in_process_worker(settings) as client:
        handle = await h.start(client, settings, export)
        with pytest.raises(WorkflowFailureError):
            await handle.result()
        progress = await handle.query(ExportWorkflow.progress)
    assert progress.status == ExportStatus.FAILED
    assert "at most 16,384 columns" in (progress.error or "")
    assert progress.parts == 0
