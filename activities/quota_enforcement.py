"""The run-time side of `domain.quotas`: a quota crossed fails the export for good.

Each helper is one call in `export_activities`; a crossed cap raises a non-retryable
`ApplicationError` (type `QuotaExceeded`) whose message names the cap and its setting, so the
workflow aborts the upload and shows the export FAILED with that message.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from temporalio.exceptions import ApplicationError

from activities import errors
from domain.formats.flatten import freeze_columns
from domain.models import Column
from domain.quotas import ExportQuotas, QuotaExceeded
from domain.settings import Settings


def _failed(exc: QuotaExceeded) -> ApplicationError:
    return errors.quota_exceeded(str(exc))


def enforce_totals(settings: Settings, rows: int, size: int) -> None:
    """Fail the export when its totals, this part included, are over the row or byte quota."""
    try:
        ExportQuotas.of(settings).check_totals(rows, size)
    except QuotaExceeded as exc:
        raise _failed(exc) from exc


def capped_columns(
    settings: Settings, sample: Iterable[Mapping[str, Any]], hidden_fields: Iterable[str] = ()
) -> list[Column]:
    """`freeze_columns` of the sample, failing the export past the column cap."""
    try:
        return freeze_columns(sample, hidden_fields, max_columns=settings.export_max_columns)
    except QuotaExceeded as exc:
        raise _failed(exc) from exc
