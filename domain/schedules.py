"""Recurring exports (issue 17): the request of a schedule, the input of each of its runs, and
the pure rules a run follows (its export id, its dated filename).

A schedule is a Temporal Schedule whose action starts `ScheduledExportWorkflow` with a
`ScheduledExportInput`; that workflow starts one ordinary `ExportWorkflow` per run.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from domain.export_policy import ExportPolicy
from domain.formats.timezones import check_timezone, zone_of
from domain.models import ExportRequest, Owner
from domain.objects import file_extension

SCHEDULE_ID_PREFIX = "sch_"
RUN_WORKFLOW_SUFFIX = "-run"
"""A run's workflow id is `<schedule id>-run-<scheduled time>` (Temporal appends the time)."""
MAX_CRON_LENGTH = 100


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


def _check_cron(value: str | None) -> str | None:
    """Five fields (minute hour day-of-month month day-of-week) of printable ASCII; Temporal
    checks the values themselves when the schedule is created (422 naming the field)."""
    if value is None:
        return None
    fields = value.split()
    if len(fields) != 5 or not all(0x20 < ord(c) < 0x7F for c in "".join(fields)):
        raise ValueError(
            "cron must have five fields: minute hour day-of-month month day-of-week, "
            "e.g. '0 7 * * MON'"
        )
    return " ".join(fields)


class ScheduleTiming(_Frozen):
    """When a schedule fires: a cron expression or a fixed interval, in a time zone."""

    cron: Annotated[str | None, Field(default=None, max_length=MAX_CRON_LENGTH)] = None
    """Five-field cron, read in `timezone`: `0 7 * * MON` is every Monday at 07:00."""
    interval_seconds: Annotated[int | None, Field(default=None, gt=0, le=366 * 24 * 3600)] = None
    """Every this many seconds (at least `SCHEDULE_MIN_INTERVAL_SECONDS`)."""
    timezone: Annotated[str, Field(max_length=64)] = "UTC"
    """IANA zone of the cron expression and of the date in each run's filename."""

    @field_validator("cron")
    @classmethod
    def _cron_has_five_fields(cls, value: str | None) -> str | None:
        return _check_cron(value)

    @field_validator("timezone")
    @classmethod
    def _timezone_is_iana(cls, value: str) -> str:
        return check_timezone(value)

    @model_validator(mode="after")
    def _exactly_one_spec(self) -> ScheduleTiming:
        if (self.cron is None) == (self.interval_seconds is None):
            raise ValueError("give exactly one of cron and interval_seconds")
        return self


class ScheduleRequest(ScheduleTiming):
    """`POST /schedules`: an export request and when to run it."""

    export: ExportRequest
    paused: bool = False
    note: Annotated[str | None, Field(default=None, max_length=500)] = None


class ScheduleChange(_Frozen):
    """`PATCH /schedules/{id}`: the fields to change; the others stay as they are."""

    export: ExportRequest | None = None
    cron: Annotated[str | None, Field(default=None, max_length=MAX_CRON_LENGTH)] = None
    interval_seconds: Annotated[int | None, Field(default=None, gt=0, le=366 * 24 * 3600)] = None
    timezone: Annotated[str | None, Field(default=None, max_length=64)] = None

    @field_validator("cron")
    @classmethod
    def _cron_has_five_fields(cls, value: str | None) -> str | None:
        return _check_cron(value)

    @field_validator("timezone")
    @classmethod
    def _timezone_is_iana(cls, value: str | None) -> str | None:
        return None if value is None else check_timezone(value)

    @model_validator(mode="after")
    def _at_most_one_spec(self) -> ScheduleChange:
        if self.cron is not None and self.interval_seconds is not None:
            raise ValueError("give at most one of cron and interval_seconds")
        return self

    def timing(self, current: ScheduleTiming) -> ScheduleTiming:
        """The timing after this change."""
        cron, interval = current.cron, current.interval_seconds
        if self.cron is not None:
            cron, interval = self.cron, None
        elif self.interval_seconds is not None:
            cron, interval = None, self.interval_seconds
        return ScheduleTiming(
            cron=cron, interval_seconds=interval, timezone=self.timezone or current.timezone
        )


class ScheduledExportInput(_Frozen):
    """What the schedule's action passes to each run: everything but the run's own id and date."""

    schedule_id: str
    owner: Owner
    request: ExportRequest
    policy: ExportPolicy
    """The settings the schedule was accepted (or last changed) under."""
    timing: ScheduleTiming
    """As the owner gave it: Temporal's own description turns a cron string into calendars."""


def run_workflow_id(schedule_id: str) -> str:
    return schedule_id + RUN_WORKFLOW_SUFFIX


def run_export_id(run_workflow_id: str) -> str:
    """The export id of one run, derived from the run's workflow id (which Temporal makes
    unique per scheduled time): a run replayed or restarted never starts a second export, and
    the API can name the export of each run it sees in the schedule's recent actions."""
    return "exp_" + hashlib.sha256(run_workflow_id.encode()).hexdigest()[:32]


def run_date_label(scheduled_at: datetime, timezone: str) -> str:
    """`2026-11-30-0700`: the run's scheduled time in the schedule's zone, for its filename."""
    local = scheduled_at.astimezone(UTC).astimezone(zone_of(timezone))
    return local.strftime("%Y-%m-%d-%H%M")


def dated_filename(request: ExportRequest, label: str) -> str:
    """The run's filename: the request's with the date label before its extension
    (`weekly.csv` → `weekly-2026-11-30-0700.csv`), or `<report or collection>-<label><ext>`."""
    extension = file_extension(request)
    if request.filename is None:
        return f"{request.report_id or request.collection}-{label}{extension}"
    name = request.filename
    if name.lower().endswith(extension) and len(name) > len(extension):
        return f"{name[: -len(extension)]}-{label}{name[-len(extension) :]}"
    stem, dot, suffix = name.rpartition(".")
    if dot and stem:
        return f"{stem}-{label}.{suffix}"
    return f"{name}-{label}"
