"""`make demo`: an export from request to verified download, as a client would do it.

Seeds a deterministic `inspections` collection, asks the API (started by `make up`) for a CSV
export of a realistic report, shows a progress bar until it completes, receives the signed
completion webhook on a local receiver, downloads the file through the presigned link, and checks
its row count and SHA-256 against a direct reading of the same pipeline. Exits non-zero if any
check fails. `--format xlsx` (or `DEMO_FORMAT=xlsx`) asks for the same report as an Excel
workbook and checks it by reading it back with openpyxl: its sheets hold the direct reading's
rows, value by value.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import hmac
import io
import json
import os
import queue
import sys
import threading
import time
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import openpyxl
from pymongo import MongoClient
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from activities.notify_activities import SIGNATURE_HEADER, sign
from api.auth import mint_token
from devstack import services
from domain.formats.encoding import EncodingSpec, new_part_encoder
from domain.models import ExportRequest, Owner
from domain.pipeline.export_plan import plan_export
from domain.settings import Settings
from scripts.seed_inspections import ensure_inspections

OWNER = Owner(user_id="demo-analyst", tenant="demo-tenant")
REPORT: dict[str, Any] = {
    "collection": "inspections",
    "report_id": "failed-inspections",
    "filename": "failed-inspections.csv",
    "pipeline": [
        {"$match": {"result": {"$in": ["Fail", "Pass w/ Conditions", "Closed"]}}},
        {"$sort": {"date": -1}},
    ],
    "columns": [
        {"path": "certificate", "header": "Certificate"},
        {"path": "date", "header": "Inspected at"},
        {"path": "business.name", "header": "Business"},
        {"path": "business.address.street", "header": "Street"},
        {"path": "business.address.city", "header": "City"},
        {"path": "business.address.zip", "header": "ZIP"},
        {"path": "result", "header": "Result"},
        {"path": "score", "header": "Score"},
        {"path": "violations", "header": "Violations"},
    ],
}
console = Console()


class WebhookReceiver:
    """A local HTTP endpoint that keeps every notification whose signature checks out."""

    def __init__(self, secret: str, port: int) -> None:
        self.received: queue.Queue[dict[str, Any]] = queue.Queue()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                signed = hmac.compare_digest(
                    self.headers.get(SIGNATURE_HEADER, ""), sign(secret, body)
                )
                self.send_response(204 if signed else 401)
                self.end_headers()
                if signed:
                    receiver.received.put(json.loads(body))

            def log_message(self, format: str, *args: Any) -> None:
                pass

        # A fixed port, listed in WEBHOOK_ALLOWED_HOSTS: the worker calls no other loopback host.
        self._server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}/export-finished"

    def close(self) -> None:
        self._server.shutdown()


def direct_reading(settings: Settings, request: ExportRequest) -> tuple[int, bytes]:
    """The same pipeline read in one go with PyMongo and encoded at once: the reference."""
    plan = plan_export(request, OWNER, settings)
    client: MongoClient[dict[str, Any]] = MongoClient(settings.mongodb_uri, tz_aware=True)
    encoder = new_part_encoder(
        EncodingSpec.of(request, hidden_fields=plan.hidden_fields), request.columns, first_part=True
    )
    rows = 0
    for row in client[settings.mongodb_database][request.collection].aggregate(
        plan.pipeline_for(None)
    ):
        encoder.write(row)
        rows += 1
    client.close()
    return rows, encoder.finish(last=True)


def workbook_rows(body: bytes) -> list[tuple[Any, ...]]:
    """Every sheet's rows after its header, in order (openpyxl, read-only)."""
    workbook = openpyxl.load_workbook(io.BytesIO(body), read_only=True)
    rows: list[tuple[Any, ...]] = []
    for sheet in workbook.worksheets:
        rows += list(sheet.iter_rows(min_row=2, values_only=True))
    workbook.close()
    return rows


def check(ok: bool, what: str) -> bool:
    console.print(f"[green]✔[/green] {what}" if ok else f"[red]✘ {what}[/red]")
    return ok


def run(documents: int, output: Path, file_format: str = "csv") -> int:
    for key, value in services.env_values().items():
        os.environ.setdefault(key, value)
    settings = Settings()
    started = time.monotonic()

    mongo: MongoClient[dict[str, Any]] = MongoClient(settings.mongodb_uri)
    with console.status(f"Seeding {documents:,} inspections (once per size)…"):
        seeded = ensure_inspections(
            mongo[settings.mongodb_database]["inspections"],
            documents,
            tenant=OWNER.tenant,
            tenant_field=settings.tenant_field,
        )
    mongo.close()
    console.print(
        f"inspections: {documents:,} documents ({'seeded' if seeded else 'already there'})"
    )

    receiver = WebhookReceiver(settings.webhook_signing_secret, services.DEMO_WEBHOOK_PORT)
    report = {**REPORT, "format": file_format, "filename": f"failed-inspections.{file_format}"}
    request = ExportRequest.model_validate({**report, "notify": {"webhook_url": receiver.url}})
    expected_rows, expected_bytes = direct_reading(settings, request)

    token = mint_token(settings.api_jwt_secret, OWNER.user_id, OWNER.tenant, timedelta(hours=1))
    api = httpx.Client(
        base_url=settings.api_public_url, headers={"Authorization": f"Bearer {token}"}, timeout=30
    )
    accepted = api.post("/exports", json=request.model_dump(mode="json", exclude_none=True))
    if accepted.status_code != 202:
        console.print(f"[red]POST /exports answered {accepted.status_code}: {accepted.text}[/red]")
        return 1
    export_id = accepted.json()["export_id"]
    console.print(f"export [bold]{export_id}[/bold] accepted: {accepted.json()['strategy']}")

    status: dict[str, Any] = {}
    with Progress(
        TextColumn("exporting"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("rows"),
        TextColumn("{task.fields[parts]} part(s)"),
        TimeElapsedColumn(),
        console=console,
    ) as bar:
        task = bar.add_task("export", total=expected_rows, parts=0)
        while status.get("status") not in {"COMPLETED", "FAILED", "CANCELLED"}:
            time.sleep(0.3)
            status = api.get(f"/exports/{export_id}").json()
            bar.update(task, completed=status.get("rows", 0), parts=status.get("parts", 0))

    ok = check(
        status["status"] == "COMPLETED",
        f"export ended {status['status']} {status.get('error') or ''}",
    )
    try:
        note = receiver.received.get(timeout=60)
    except queue.Empty:
        note = {}
    receiver.close()
    ok &= check(
        note.get("export_id") == export_id and note.get("status") == "COMPLETED",
        "signed completion webhook received",
    )
    url = note.get("download_url") or status.get("download_url")
    body = httpx.get(url, timeout=60).content if url else b""
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_bytes(body)
    if file_format == "xlsx":
        # Part boundaries change the deflate stream, so the check is on what a reader sees.
        got = workbook_rows(body) if body else []
        rows = len(got)
        ok &= check(
            rows == expected_rows,
            f"row count {rows:,} equals the direct reading's {expected_rows:,}",
        )
        ok &= check(
            got == workbook_rows(expected_bytes),
            "every cell read back with openpyxl equals the direct reading's",
        )
    else:
        rows = (
            len(list(csv.reader(io.StringIO(body.decode("utf-8"), newline="")))) - 1
        )  # less the header
        ok &= check(
            rows == expected_rows,
            f"row count {rows:,} equals the direct reading's {expected_rows:,}",
        )
        digest, expected_digest = (
            hashlib.sha256(body).hexdigest(),
            hashlib.sha256(expected_bytes).hexdigest(),
        )
        ok &= check(
            digest == expected_digest, f"SHA-256 {digest[:16]}… equals the direct reading's"
        )
    ok &= check(
        api.get(f"/exports/{export_id}/download").status_code == 302,
        "GET /download redirects (302)",
    )

    seconds = time.monotonic() - started
    console.print(f"\nfile:        {output.resolve()}", soft_wrap=True)
    ui = (
        f"{settings.temporal_ui_url}/namespaces/{settings.temporal_namespace}/workflows/{export_id}"
    )
    console.print(f"Temporal UI: {ui}", soft_wrap=True)
    figures = (
        f"{status.get('rows', 0):,} rows, {status.get('bytes', 0):,} bytes, "
        f"{status.get('parts', 0)} part(s), export {status.get('rows_per_second')} rows/s, "
        f"demo {seconds:.1f} s"
    )
    console.print(f"figures:     {figures}", soft_wrap=True)
    return 0 if ok else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m scripts.demo", description=__doc__)
    parser.add_argument(
        "--documents",
        type=int,
        default=int(os.environ.get("DEMO_DOCUMENTS", "50000")),
        help="size of the seeded inspections collection (default 50000, env DEMO_DOCUMENTS)",
    )
    parser.add_argument(
        "--format",
        choices=["csv", "xlsx"],
        default=os.environ.get("DEMO_FORMAT", "csv"),
        help="the report's file format (default csv, env DEMO_FORMAT)",
    )
    parser.add_argument(
        "--output",
        type=Path,
        default=None,
        help="where to save the downloaded file (default downloads/failed-inspections.<format>)",
    )
    args = parser.parse_args(argv)
    output = args.output or Path(f"downloads/failed-inspections.{args.format}")
    return run(args.documents, output, args.format)


if __name__ == "__main__":
    sys.exit(main())
