"""Per-export quotas: rows, bytes and frozen columns, each capped by a setting.

A pipeline can turn one document into a million rows (`$range` + `$unwind`) or a million
columns; these caps bound what one export can cost. They are shown by `POST /exports/explain` and
enforced while the export runs: the part that would cross a cap fails the export with a
non-retryable error (the workflow then aborts the upload), so a user sees FAILED with the cap
named. A cap of 0 rows or bytes means none.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from domain.settings import Settings


class QuotaExceeded(ValueError):
    """An export went over one of its caps; the message names it and the setting."""


class ExportQuotas(BaseModel):
    """The caps one export runs under."""

    model_config = ConfigDict(frozen=True)

    max_rows: int | None = Field(description="Rows one export may write (EXPORT_MAX_ROWS).")
    max_bytes: int | None = Field(description="Bytes one export may write (EXPORT_MAX_BYTES).")
    max_columns: int = Field(
        description="CSV columns frozen from the first rows at most (EXPORT_MAX_COLUMNS)."
    )

    @classmethod
    def of(cls, settings: Settings) -> ExportQuotas:
        return cls(
            max_rows=settings.export_max_rows or None,
            max_bytes=settings.export_max_bytes or None,
            max_columns=settings.export_max_columns,
        )

    def check_totals(self, rows: int, size: int) -> None:
        """Raise `QuotaExceeded` when the export's running totals are over a cap."""
        if self.max_rows is not None and rows > self.max_rows:
            raise QuotaExceeded(
                f"the export reached {rows} rows, over its quota of {self.max_rows} "
                "(EXPORT_MAX_ROWS); narrow the pipeline, or ask for a higher quota"
            )
        if self.max_bytes is not None and size > self.max_bytes:
            raise QuotaExceeded(
                f"the export reached {size} bytes, over its quota of {self.max_bytes} "
                "(EXPORT_MAX_BYTES); narrow the pipeline, or ask for a higher quota"
            )
