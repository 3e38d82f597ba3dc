"""The pure rules of recurring exports: timings, a run's export id and its dated filename."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from pydantic import ValidationError

from domain.models import ExportRequest
from domain.schedules import (
    ScheduleChange,
    ScheduleRequest,
    ScheduleTiming,
    dated_filename,
    run_date_label,
    run_export_id,
    run_workflow_id,
)
from domain.settings import Settings

MONDAY_7_PARIS = datetime(2026, 11, 30, 6, 0, tzinfo=UTC)


def test_a_timing_is_a_cron_or_an_interval() -> None:
    assert ScheduleTiming(cron="0  7 * * MON").cron == "0 7 * * MON"
    assert ScheduleTiming(interval_seconds=60).timezone == "UTC"
    for bad in ({}, {"cron": "0 7 * * MON", "interval_seconds": 60}, {"cron": "0 7 * *"}):
        with pytest.raises(ValidationError):
            ScheduleTiming(**bad)
    with pytest.raises(ValidationError, match="IANA"):
        ScheduleTiming(interval_seconds=60, timezone="localtime")


def test_a_request_carries_an_export_request() -> None:
    request = ScheduleRequest.model_validate(
        {"export": {"collection": "orders"}, "cron": "0 7 * * MON", "timezone": "Europe/Paris"}
    )
    assert request.export.collection == "orders"
    with pytest.raises(ValidationError):
        ScheduleRequest.model_validate({"export": {"collection": "a/b"}, "interval_seconds": 60})


def test_a_change_keeps_what_it_does_not_name() -> None:
    current = ScheduleTiming(cron="0 7 * * MON", timezone="Europe/Paris")
    assert ScheduleChange(interval_seconds=60).timing(current) == ScheduleTiming(
        interval_seconds=60, timezone="Europe/Paris"
    )
    assert ScheduleChange(timezone="UTC").timing(current).cron == "0 7 * * MON"
    with pytest.raises(ValidationError):
        ScheduleChange(cron="0 7 * * MON", interval_seconds=60)


def test_each_run_has_its_own_stable_export_id() -> None:
    run = run_workflow_id("sch_" + "a" * 32)
    first = run_export_id(f"{run}-2026-11-30T06:00:00Z")
    assert first == run_export_id(f"{run}-2026-11-30T06:00:00Z")
    assert first != run_export_id(f"{run}-2026-12-07T06:00:00Z")
    assert first.startswith("exp_")
    assert len(first) == 36


def test_the_date_is_the_schedules_local_date() -> None:
    assert run_date_label(MONDAY_7_PARIS, "Europe/Paris") == "2026-11-30-0700"
    assert run_date_label(MONDAY_7_PARIS, "UTC") == "2026-11-30-0600"
    assert run_date_label(datetime(2026, 11, 30, 23, 30, tzinfo=UTC), "Asia/Tokyo") == (
        "2026-12-01-0830"
    )


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({"filename": "weekly.csv"}, "weekly-L.csv"),
        ({"filename": "weekly.csv.gz", "compression": "gzip"}, "weekly-L.csv.gz"),
        ({"filename": "report.txt"}, "report-L.txt"),
        ({"filename": "report"}, "report-L"),
        ({}, "orders-L.csv"),
        ({"report_id": "paid", "format": "xlsx"}, "paid-L.xlsx"),
    ],
)
def test_the_filename_carries_the_date(fields: dict[str, str], expected: str) -> None:
    request = ExportRequest.model_validate({"collection": "orders", **fields})
    assert dated_filename(request, "L") == expected


def test_settings_have_safe_defaults() -> None:
    settings = Settings()
    assert settings.schedule_catchup_window_seconds >= 10
    assert settings.schedule_min_interval_seconds >= 60
