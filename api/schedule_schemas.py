"""What the schedule endpoints answer (the request bodies are `domain.schedules`' models)."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from domain.models import ExportRequest


class _Response(BaseModel):
    model_config = ConfigDict(frozen=True)


class ScheduleRun(_Response):
    """One run the schedule started: the export it made is an ordinary export."""

    scheduled_at: datetime
    started_at: datetime
    export_id: str


class ScheduleView(_Response):
    """A schedule as its owner sees it (`GET /schedules/{id}`)."""

    schedule_id: str
    export: ExportRequest
    cron: str | None
    interval_seconds: int | None
    timezone: str
    paused: bool
    note: str | None
    overlap: Literal["skip"] = Field(
        description="A scheduled time that comes while the previous run's export is still "
        "going starts nothing."
    )
    catchup_window_seconds: int | None = Field(
        description="How late a run missed during an outage may still start; the times one "
        "outage missed start one run."
    )
    next_runs: list[datetime]
    recent_runs: list[ScheduleRun] = Field(description="Newest first (the last ten at most).")
    running_export_ids: list[str]
    runs: int = Field(description="Runs started so far.")
    skipped_overlapping: int
    missed_catchup_window: int
    created_at: datetime
    updated_at: datetime | None


class ScheduleList(_Response):
    items: list[ScheduleView]


class RunAccepted(_Response):
    schedule_id: str
    message: str
