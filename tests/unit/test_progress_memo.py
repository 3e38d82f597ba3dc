"""What ExportWorkflow publishes to its memo, and the view the API builds from it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from domain.models import ExportState, ExportStatus, ProgressMemo

STARTED = datetime(2026, 1, 1, tzinfo=UTC)


def _state() -> ExportState:
    return ExportState(
        status=ExportStatus.RUNNING,
        strategy="keyset on _id",
        object_key="exports/t/exp_1/f.csv",
        upload_id="secret-upload-id",
        cursor='{"_id": 5}',
        rows=1_000,
        bytes=50_000,
        parts_done=2,
        next_part_number=3,
        format_state="x" * 100_000,
        warnings={"invalid_utf8": 3},
        started_at=STARTED,
    )


def test_the_memo_carries_the_counters_and_warnings_but_not_the_workflows_own_state() -> None:
    memo = ProgressMemo.of(_state())
    dumped = memo.model_dump()
    assert dumped["rows"] == 1_000
    assert dumped["parts_done"] == 2
    assert dumped["warnings"] == {"invalid_utf8": 3}
    for private in ("format_state", "cursor", "upload_id", "columns", "next_part_number"):
        assert private not in dumped
    assert len(memo.model_dump_json()) < 1_000


def test_the_view_adds_the_rows_of_the_part_in_flight() -> None:
    memo = ProgressMemo.of(_state())
    view = memo.view("exp_1", STARTED + timedelta(seconds=10), rows_in_flight=500)
    assert view.rows == 1_500
    assert view.parts == 2
    assert view.bytes == 50_000
    assert view.rows_per_second == 150.0
    assert view.strategy == "keyset on _id"
    assert view.warnings == {"invalid_utf8": 3}


def test_a_memo_written_by_a_newer_version_with_more_fields_still_reads() -> None:
    data = {**ProgressMemo.of(_state()).model_dump(mode="json"), "new_counter": 7}
    assert ProgressMemo.model_validate(data).rows == 1_000
