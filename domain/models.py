"""Requests, owners, durable workflow state and the progress view.

Pipelines, chunk cursors and anything else that may hold BSON values travel as Extended JSON
(plain JSON-compatible data), so every model here serialises through Temporal's pydantic data
converter unchanged. `domain.extended_json` turns them into real BSON values before a query runs.
"""

from __future__ import annotations

import re
from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any, Literal
from urllib.parse import quote

from pydantic import BaseModel, ConfigDict, Field, field_validator

ExportFormat = Literal["csv", "jsonl"]
Compression = Literal["none", "gzip"]

MAX_KEY_SEGMENT_BYTES = 255
"""A file name or directory in an object key; the POSIX-backed S3 servers' limit (AWS: 1,024 for
the whole key). A longer filename would start an upload that can never complete."""
_KEY_SEGMENT_SAFE = " ()+,;=@"


def key_segment(value: str) -> str:
    """`value` as one percent-encoded segment of an object key: it cannot add a path segment."""
    return quote(value, safe=_KEY_SEGMENT_SAFE)


_FILENAME_FORBIDDEN = re.compile(r'[\x00-\x1f\x7f/\\"]')
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Owner(_Frozen):
    """Who asked for an export. Always taken from the caller's token, never from a request body."""

    user_id: Annotated[str, Field(min_length=1, max_length=200)]
    tenant: Annotated[str, Field(min_length=1, max_length=200)]


class Column(_Frozen):
    """One output column: a dotted path into the row, and the header shown for it."""

    path: Annotated[str, Field(min_length=1, max_length=500)]
    header: Annotated[str | None, Field(default=None, max_length=500)] = None

    @field_validator("path")
    @classmethod
    def _path_is_dotted_field_path(cls, value: str) -> str:
        parts = value.split(".")
        if any(part == "" or part.startswith("$") for part in parts):
            raise ValueError(
                f"column path {value!r} must be a dotted field path such as 'address.city'"
            )
        return value

    @property
    def title(self) -> str:
        return self.header if self.header is not None else self.path


class Notify(_Frozen):
    """Where to announce completion or failure. Either, both or neither."""

    webhook_url: Annotated[str | None, Field(default=None, max_length=2000)] = None
    email: Annotated[str | None, Field(default=None, max_length=320)] = None

    @field_validator("webhook_url")
    @classmethod
    def _webhook_is_http(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("http://", "https://")):
            raise ValueError("webhook_url must be an http:// or https:// URL")
        return value

    @field_validator("email")
    @classmethod
    def _email_looks_like_one(cls, value: str | None) -> str | None:
        if value is not None and not _EMAIL.match(value):
            raise ValueError(f"email {value!r} is not an e-mail address")
        return value


class ExportRequest(_Frozen):
    """What a client asks for (the API body). Stored as the workflow input, with the owner."""

    collection: Annotated[str, Field(min_length=1, max_length=120, pattern=r"^[A-Za-z0-9_.\-]+$")]
    pipeline: Annotated[list[dict[str, Any]], Field(max_length=200)] = Field(default_factory=list)
    columns: Annotated[list[Column] | None, Field(default=None, max_length=1000)] = None
    format: ExportFormat = "csv"
    compression: Compression = "none"
    filename: Annotated[str | None, Field(default=None, min_length=1, max_length=200)] = None
    report_id: Annotated[str | None, Field(default=None, max_length=200)] = None
    notify: Notify | None = None
    csv_bom: bool = False
    """Prefix the CSV with a UTF-8 byte order mark, so Excel reads it as UTF-8."""
    formula_guard: bool = True
    """Prefix string cells that a spreadsheet would run as a formula with a quote."""

    @field_validator("filename")
    @classmethod
    def _filename_is_a_plain_name(cls, value: str | None) -> str | None:
        if value is None:
            return value
        if _FILENAME_FORBIDDEN.search(value) or value in {".", ".."}:
            raise ValueError(
                "filename must be a plain file name: no path separators, quotes or control characters"
            )
        if len(key_segment(value)) > MAX_KEY_SEGMENT_BYTES:
            raise ValueError(
                f"filename is too long for an object key: {len(key_segment(value))} bytes once "
                f"encoded, at most {MAX_KEY_SEGMENT_BYTES} (non-ASCII characters take 6 to 12)"
            )
        return value

    @field_validator("report_id")
    @classmethod
    def _report_id_fits_a_default_filename(cls, value: str | None) -> str | None:
        # The default filename is `<report_id>-<export id>.<ext>`: leave room for the rest.
        if value is not None and len(key_segment(value)) > MAX_KEY_SEGMENT_BYTES - 80:
            raise ValueError(
                f"report_id is too long for an object key: {len(key_segment(value))} bytes once "
                f"encoded, at most {MAX_KEY_SEGMENT_BYTES - 80}"
            )
        return value


class ExportStatus(StrEnum):
    PENDING = "PENDING"
    RUNNING = "RUNNING"
    COMPLETING = "COMPLETING"
    COMPLETED = "COMPLETED"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"

    @property
    def is_terminal(self) -> bool:
        return self in {ExportStatus.COMPLETED, ExportStatus.FAILED, ExportStatus.CANCELLED}


class ExportInput(_Frozen):
    """The workflow input: the request, its owner and the id the API gave it."""

    export_id: str
    owner: Owner
    request: ExportRequest
    requested_at: datetime
    resume: ExportState | None = None
    """The state a continued-as-new run picks up from; None for a new export."""


class ExportState(BaseModel):
    """The durable state of one export: everything a resumed or continued-as-new run needs.

    The per-part ETag list is deliberately absent: ListParts rebuilds it at completion, so the
    state stays small however many parts an export has.
    """

    model_config = ConfigDict(extra="forbid")

    status: ExportStatus = ExportStatus.PENDING
    strategy: str | None = None
    object_key: str | None = None
    filename: str | None = None
    upload_id: str | None = None
    columns: list[Column] | None = None
    cursor: str | None = None
    """The chunk cursor (the last row's sort key) as canonical Extended JSON, or None at the start."""
    next_part_number: int = 1
    rows: int = 0
    bytes: int = 0
    parts_done: int = 0
    format_state: str | None = None
    """The encoder's running state after the last part (`PartEncoder.carry`), for formats whose
    trailer indexes the whole file; None for CSV and JSON Lines."""
    warnings: dict[str, int] = Field(default_factory=dict)
    """Counts of values changed to fit the format (replaced invalid UTF-8, truncated cells…)."""
    started_at: datetime | None = None
    finished_at: datetime | None = None
    error: str | None = None


class ProgressView(_Frozen):
    """What the `progress` query and the API show of an export."""

    export_id: str
    status: ExportStatus
    strategy: str | None
    rows: int
    bytes: int
    parts: int
    started_at: datetime | None
    finished_at: datetime | None
    rows_per_second: float | None
    error: str | None
    object_key: str | None
    warnings: dict[str, int] = Field(default_factory=dict)

    @classmethod
    def of(cls, export_id: str, state: ExportState, now: datetime) -> ProgressView:
        end = state.finished_at or now
        rate: float | None = None
        if state.started_at is not None:
            seconds = (end - state.started_at).total_seconds()
            rate = round(state.rows / seconds, 1) if seconds > 0 else None
        return cls(
            export_id=export_id,
            status=state.status,
            strategy=state.strategy,
            rows=state.rows,
            bytes=state.bytes,
            parts=state.parts_done,
            started_at=state.started_at,
            finished_at=state.finished_at,
            rows_per_second=rate,
            error=state.error,
            object_key=state.object_key,
            warnings=dict(state.warnings),
        )


# -- the progress the workflow publishes to the Temporal server (issue 13) ----------------------

PROGRESS_MEMO_KEY = "progress"
"""The memo key under which ExportWorkflow publishes its `ProgressMemo`."""


class ProgressMemo(BaseModel):
    """What ExportWorkflow writes to its memo as parts complete and its status changes, so the
    API answers from the Temporal server alone (no workflow query, no worker needed).

    The counters of `ExportState` without what only the workflow needs (cursor, upload id,
    columns, `format_state`, which can be large): memos are small and sent on every describe.
    """

    model_config = ConfigDict(extra="ignore")

    status: ExportStatus
    strategy: str | None = None
    object_key: str | None = None
    rows: int = 0
    bytes: int = 0
    parts_done: int = 0
    warnings: dict[str, int] = Field(default_factory=dict)
    started_at: datetime | None = None
    finished_at: datetime | None = None
    error: str | None = None

    @classmethod
    def of(cls, state: ExportState) -> ProgressMemo:
        return cls.model_validate(state.model_dump(include=set(cls.model_fields)))

    def view(self, export_id: str, now: datetime, *, rows_in_flight: int = 0) -> ProgressView:
        """The API's view; `rows_in_flight` are the rows the part being written has read so far
        (its activity's last heartbeat)."""
        state = ExportState.model_validate(self.model_dump())
        state.rows += rows_in_flight
        return ProgressView.of(export_id, state, now)


ExportInput.model_rebuild()
