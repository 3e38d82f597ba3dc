"""The inputs and results that pass between ExportWorkflow and its activities.

Plain pydantic models of JSON-friendly values: cursors travel as canonical Extended JSON strings.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from domain.models import Column, ExportInput, ExportStatus


class _Io(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class PreparedExport(_Io):
    """What `prepare_export` decided: the chunk strategy, the frozen columns and the object."""

    strategy: str
    explanation: str
    columns: list[Column] | None
    object_key: str
    filename: str


class UploadTarget(_Io):
    export: ExportInput
    object_key: str
    filename: str


class PartRequest(_Io):
    """Produce part `part_number` from the rows after `cursor`."""

    export: ExportInput
    object_key: str
    upload_id: str
    columns: list[Column] | None
    """The frozen columns, or None for the request's own (or, without any, whole documents)."""
    cursor: str | None
    part_number: int
    rows_so_far: int
    bytes_so_far: int
    format_state: str | None = None
    """The previous part's `PartResult.format_state` (see `PartEncoder.carry`)."""


class PartResult(_Io):
    part_number: int
    etag: str
    cursor: str | None
    rows: int
    bytes: int
    exhausted: bool
    format_state: str | None = None
    warnings: dict[str, int] = Field(default_factory=dict)


class CompleteRequest(_Io):
    object_key: str
    upload_id: str
    parts: int
    expected_etags: dict[int, str] = Field(default_factory=dict)
    """The ETags the workflow accepted for these parts: a listed part with another ETag was
    overwritten by a late attempt, and the upload is not completed (see `CompleteResult`)."""
    complete: bool = True
    """False: only check the parts (before continue-as-new drops their records)."""


class CompleteResult(_Io):
    overwritten: list[int] = Field(default_factory=list)
    """Parts whose listed ETag is not the accepted one; nothing was completed if any."""


class AbortRequest(_Io):
    object_key: str
    upload_id: str | None
    """None: abort every upload of the key (a start whose answer never arrived)."""


class Outcome(_Io):
    """What the owner is told when an export ends."""

    export: ExportInput
    status: ExportStatus
    object_key: str | None
    filename: str | None
    rows: int
    bytes: int
    error: str | None


Channel = Literal["log", "request_webhook", "operator_webhook", "email"]
CHANNELS: tuple[Channel, ...] = ("log", "request_webhook", "operator_webhook", "email")


class ChannelNotice(_Io):
    """Tell the owner of `outcome` through one channel."""

    outcome: Outcome
    channel: Channel


class JanitorRequest(_Io):
    max_age_seconds: int


class JanitorReport(_Io):
    examined: int
    aborted: list[str]
    kept_running: list[str]
    deleted: list[str] = Field(default_factory=list)
    """Temporary objects of parallel exports that no running export owns (issue 16)."""
