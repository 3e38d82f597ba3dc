"""Requests, owners, durable workflow state and the progress view.

Pipelines, chunk cursors and anything else that may hold BSON values travel as Extended JSON
(plain JSON-compatible data), so every model here serialises through Temporal's pydantic data
converter unchanged. `domain.pipeline.extended_json` turns them into real BSON values before a query runs.
"""

from __future__ import annotations

import re
from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any, Literal
from urllib.parse import quote

import email_validator
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationInfo,
    field_validator,
    model_validator,
)

from domain.export_policy import ExportPolicy
from domain.formats.timezones import check_timezone

ExportFormat = Literal["csv", "jsonl", "parquet", "xlsx"]
Compression = Literal["none", "gzip"]
Delimiter = Literal[",", ";", "\t"]
Parallelism = Annotated[int, Field(ge=1, le=1000)] | Literal["auto"]
"""How many partitions read one export at once (`domain.pipeline.partitioning`): a number, or `auto`."""
CsvPreset = Literal["spreadsheet_semicolon"]
"""`spreadsheet_semicolon`: for spreadsheets in locales whose list separator is `;` (most of
continental Europe): a UTF-8 BOM and `;` between cells."""

MAX_KEY_SEGMENT_BYTES = 255
"""A file name or directory in an object key; the POSIX-backed S3 servers' limit (AWS: 1,024 for
the whole key). A longer filename would start an upload that can never complete."""
_KEY_SEGMENT_SAFE = " ()+,;=@"


def key_segment(value: str) -> str:
    """`value` as one percent-encoded segment of an object key: it cannot add a path segment."""
    return quote(value, safe=_KEY_SEGMENT_SAFE)


_NAME_FORBIDDEN = re.compile(
    r"""[\x00-\x1f\x7f-\x9f/\\"'\u2028\u2029\u200e\u200f\u202a-\u202e\u2066-\u2069]"""
)
"""In a filename or report id: control characters (C0, DEL, C1), path separators, ASCII quotes,
the Unicode line and paragraph separators, and the bidirectional controls that can make
`report\u202egpj.csv` display as `reportvsc.jpg`. These names reach object keys,
`Content-Disposition` and e-mails."""


def plain_name(value: str, what: str) -> str:
    """`value` if it is a plain name (see `_NAME_FORBIDDEN`, no dot segment), else ValueError."""
    if _NAME_FORBIDDEN.search(value) or value in {".", ".."}:
        raise ValueError(
            f"{what} must be a plain file name: no path separators, quotes, control characters, "
            "line separators or bidirectional controls, and not '.' or '..'"
        )
    return value


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
    def _email_is_exactly_one_address(cls, value: str | None) -> str | None:
        """One address, checked by `email-validator`: no lists, no display names, no quoted
        local parts, no IP literals, no local mailboxes (`root`, `root@localhost`)."""
        if value is None:
            return value
        try:
            email_validator.validate_email(
                value,
                check_deliverability=False,
                allow_display_name=False,
                allow_quoted_local=False,
                allow_domain_literal=False,
                allow_smtputf8=True,
            )
        except email_validator.EmailNotValidError as exc:
            raise ValueError(f"email must be exactly one e-mail address: {exc}") from exc
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
    delimiter: Delimiter | None = None
    """The CSV cell separator: `,` (the default), `;` or a tab."""
    timezone: Annotated[str | None, Field(default=None, max_length=64)] = None
    """An IANA time zone (`Europe/Paris`): CSV dates are written in it with their offset
    (`2024-03-01T10:00:00.000+01:00`), XLSX dates are its wall-clock time. Default: UTC (`Z`)."""
    parallelism: Parallelism = "auto"
    """Partitions that read and write this export at once, composed into one object in order
    (`domain.pipeline.partitioning`): `auto` is one per `EXPORT_PARTITION_ROWS` rows, at most
    `EXPORT_MAX_PARALLELISM`; 1 is always serial. XLSX, Parquet and blocking plans are serial."""
    csv_preset: CsvPreset | None = None
    """A bundle of CSV options for spreadsheets (see `CsvPreset`); an explicit `delimiter` must
    agree with it."""

    @field_validator("timezone")
    @classmethod
    def _timezone_is_iana(cls, value: str | None) -> str | None:
        return None if value is None else check_timezone(value)

    @model_validator(mode="after")
    def _options_fit_the_format(self) -> ExportRequest:
        if self.format == "xlsx" and self.compression != "none":
            raise ValueError("an xlsx file is compressed already: use compression 'none'")
        if self.format != "csv":
            given = [name for name in ("delimiter", "csv_preset") if getattr(self, name)]
            if given:
                raise ValueError(
                    f"{' and '.join(given)} applies to csv exports only, not {self.format}"
                )
        if self.csv_preset == "spreadsheet_semicolon" and self.delimiter not in (None, ";"):
            raise ValueError(
                f"csv_preset 'spreadsheet_semicolon' writes ';' between cells, but delimiter "
                f"is {self.delimiter!r}: leave one of them out"
            )
        return self

    @property
    def csv_delimiter(self) -> str:
        """The CSV cell separator in effect (the preset's, the explicit one or `,`)."""
        if self.delimiter is not None:
            return self.delimiter
        return ";" if self.csv_preset == "spreadsheet_semicolon" else ","

    @property
    def writes_bom(self) -> bool:
        """Whether the CSV starts with a UTF-8 BOM (asked for, or by the preset)."""
        return self.csv_bom or self.csv_preset == "spreadsheet_semicolon"

    @field_validator("compression")
    @classmethod
    def _parquet_compresses_itself(cls, value: Compression, info: ValidationInfo) -> Compression:
        if value != "none" and info.data.get("format") == "parquet":
            raise ValueError("a Parquet file compresses its columns itself (zstd): use none")
        return value

    @field_validator("filename")
    @classmethod
    def _filename_is_a_plain_name(cls, value: str | None) -> str | None:
        if value is None:
            return value
        plain_name(value, "filename")
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
        if value is not None:
            plain_name(value, "report_id")
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
    policy: ExportPolicy | None = None
    """The settings the export was accepted under; None in inputs recorded before snapshots."""
    resume: ExportState | None = None
    """The state a continued-as-new run picks up from; None for a new export."""
    partition: PartitionSpec | None = None
    """Set when this run is one partition of a parallel export (a child workflow)."""


class PartitionSpec(_Frozen):
    """One partition of a parallel export: the rows after its parent's boundary `index - 1`
    (the child's starting cursor) up to and including `upper` (None: to the end)."""

    index: int
    parent_workflow_id: str
    upper: str | None
    """The last cursor of this partition as canonical Extended JSON."""


class PartitionProgress(_Frozen):
    """What a partition tells its parent after each part (cumulative for the partition)."""

    index: int
    rows: int = 0
    bytes: int = 0
    parts: int = 0
    warnings: dict[str, int] = Field(default_factory=dict)


class PartRecord(BaseModel):
    """How a part was produced, so that it can be produced again, byte for byte, if an attempt
    that outlived its timeout overwrites it after the workflow moved on."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    number: int
    etag: str
    cursor_before: str | None
    rows_before: int
    bytes_before: int
    format_state_before: str | None = None
    rows: int = 0


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
    partitions: list[PartitionProgress] | None = None
    """A parallel export's partitions and their progress; [] once it was decided to run serial,
    None before it was decided (and in states recorded before partitions existed)."""
    partition_bounds: list[str] | None = None
    """The boundary cursors of a parallel export (canonical Extended JSON), P - 1 of them."""
    partition_prefix: str | None = None
    """Where the partitions write their temporary objects (`{prefix}{index:05d}`)."""
    partitioning: str | None = None
    """How the export was partitioned, or why it runs serial (`domain.pipeline.partitioning`)."""
    unverified_parts: list[PartRecord] = Field(default_factory=list)
    """Parts written since the last check of S3's listing; checked (and cleared) before
    continue-as-new and at completion, so they are never carried across a run."""
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
    partitioning: str | None = None

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
            partitioning=state.partitioning,
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
    partitioning: str | None = None

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
ExportState.model_rebuild()
