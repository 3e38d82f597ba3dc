"""Request and response bodies of the API, with the examples shown in the OpenAPI docs.

The request body is the domain's `ExportRequest` itself (the workflow stores it unchanged); the
models here are what the API answers.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from fastapi.openapi.models import Example
from pydantic import BaseModel, ConfigDict, Field

from domain.models import ExportStatus
from domain.quotas import ExportQuotas

EXPORT_ID_EXAMPLE = "exp_3f9c1d2e4b5a69788796a5b4c3d2e1f0"
STRATEGY_EXAMPLE = "keyset on _id at stage 0: every stage keeps one row per source document"

REQUEST_EXAMPLES: dict[str, Example] = {
    "minimal": Example(
        summary="A whole collection as CSV",
        value={"collection": "orders"},
    ),
    "full": Example(
        summary="A filtered, projected export with chosen columns and a webhook",
        value={
            "collection": "orders",
            "pipeline": [
                {
                    "$match": {
                        "status": "paid",
                        "created": {"$gte": {"$date": "2024-01-01T00:00:00Z"}},
                    }
                },
                {"$project": {"total": 1, "customer": 1, "created": 1}},
            ],
            "columns": [
                {"path": "_id", "header": "Order"},
                {"path": "customer.name", "header": "Customer"},
                {"path": "total"},
            ],
            "format": "csv",
            "compression": "gzip",
            "filename": "paid-orders-2024.csv.gz",
            "report_id": "paid-orders",
            "notify": {"webhook_url": "https://hooks.example.com/exports"},
            "csv_bom": True,
        },
    ),
}


class _Response(BaseModel):
    model_config = ConfigDict(frozen=True)


class ExportAccepted(_Response):
    """The answer to `POST /exports`: the export exists and runs in the background."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "export_id": EXPORT_ID_EXAMPLE,
                    "status_url": f"http://127.0.0.1:8000/exports/{EXPORT_ID_EXAMPLE}",
                    "strategy": STRATEGY_EXAMPLE,
                    "status": "PENDING",
                }
            ]
        }
    )

    export_id: str
    status_url: str = Field(description="Where to poll the export's progress.")
    strategy: str = Field(description="How the pipeline is read in chunks, in plain words.")
    status: ExportStatus


class ExportView(_Response):
    """One export's progress, and a fresh download link once it is complete."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "export_id": EXPORT_ID_EXAMPLE,
                    "status": "COMPLETED",
                    "strategy": STRATEGY_EXAMPLE,
                    "rows": 120000,
                    "bytes": 9437184,
                    "parts": 2,
                    "started_at": "2024-05-01T10:00:00Z",
                    "finished_at": "2024-05-01T10:00:12Z",
                    "rows_per_second": 10000.0,
                    "error": None,
                    "download_url": "https://s3.example.com/exports/...&X-Amz-Signature=...",
                    "download_expires_at": "2024-05-01T11:00:13Z",
                }
            ]
        }
    )

    export_id: str
    status: ExportStatus
    strategy: str | None = None
    rows: int = 0
    bytes: int = 0
    parts: int = 0
    started_at: datetime | None = None
    finished_at: datetime | None = None
    rows_per_second: float | None = None
    error: str | None = None
    warnings: dict[str, int] = Field(
        default_factory=dict,
        description="Counts of values changed to fit the format: `invalid_utf8_replaced`, "
        "`cells_truncated` (XLSX cells over 32,767 characters), `parquet_values_written_as_null`.",
    )
    partitioning: str | None = Field(
        default=None,
        description="How many partitions read the export at once, or why it runs serial.",
    )
    download_url: str | None = Field(
        default=None, description="A presigned GET link, only when the export is COMPLETED."
    )
    download_expires_at: datetime | None = None


class ExportSummary(_Response):
    """One line of `GET /exports`."""

    export_id: str
    status: ExportStatus
    started_at: datetime
    finished_at: datetime | None = None


class ExportPage(_Response):
    """A page of the caller's exports, newest first."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "items": [
                        {
                            "export_id": EXPORT_ID_EXAMPLE,
                            "status": "RUNNING",
                            "started_at": "2024-05-01T10:00:00Z",
                            "finished_at": None,
                        }
                    ],
                    "next_page_token": "CiQKIGV4cF8zZjljMWQyZTRiNWE2OTc4",
                }
            ]
        }
    )

    items: list[ExportSummary]
    next_page_token: str | None = Field(
        default=None, description="Pass as `page_token` for the next page; absent on the last."
    )


class CancelAccepted(_Response):
    """Cancellation was requested; the workflow aborts the upload and reports CANCELLED."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {"export_id": EXPORT_ID_EXAMPLE, "status": "RUNNING", "cancel_requested": True}
            ]
        }
    )

    export_id: str
    status: ExportStatus = Field(description="The status when cancellation was requested.")
    cancel_requested: bool = True


class ExplainResult(_Response):
    """What `POST /exports` would run, without starting it."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "strategy": "keyset",
                    "explanation": STRATEGY_EXAMPLE,
                    "pipeline": [
                        {"$match": {"tenantId": "acme"}},
                        {"$match": {"status": "paid"}},
                        {"$sort": {"_id": 1}},
                    ],
                }
            ]
        }
    )

    strategy: str
    explanation: str
    pipeline: list[dict[str, Any]] = Field(
        description="The first chunk's pipeline (tenant filter included), as relaxed Extended JSON."
    )
    format: str | None = Field(default=None, description="The file format the export writes.")
    content_type: str | None = Field(
        default=None, description="The object's content type, e.g. application/vnd.apache.parquet."
    )
    quotas: ExportQuotas = Field(description="The caps the export would run under.")
    output: str | None = Field(
        default=None,
        description="The file that will be written: format, delimiter, encoding, time zone.",
        examples=[
            "CSV (.csv): ';' between cells, UTF-8 with a BOM, dates in Europe/Paris with "
            "their offset, formula guard on, preset spreadsheet_semicolon"
        ],
    )
    partitioning: str | None = Field(
        default=None,
        description="Whether the export is read by partitions at once (`parallelism`), or why "
        "it runs serial; the number of partitions is decided when its keys are counted.",
    )


class Health(_Response):
    status: str = Field(examples=["ok"])


class ErrorDetail(_Response):
    status: int
    code: str = Field(description="A stable, machine-readable error code.")
    message: str
    details: Any | None = None


class ErrorBody(_Response):
    """The one shape of every error the API returns."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "error": {
                        "status": 422,
                        "code": "pipeline_refused",
                        "message": "pipeline[1].$out: stage $out is not allowed in an export",
                        "details": {"path": "pipeline[1].$out", "reason": "..."},
                    }
                }
            ]
        }
    )

    error: ErrorDetail
