"""The settings an export was accepted under, frozen into its workflow input.

A running export must not change when an operator changes the workers' configuration: every
part is planned, read and retried under the policy the API snapshotted when it accepted the
request. Field names are `Settings` field names, so `apply` lays the policy over a worker's
settings. Inputs recorded before the snapshot existed carry none and use these defaults.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

from domain.settings import Settings

QUERY_MARGIN = timedelta(seconds=60)
"""What an activity that runs one query gets beyond its `maxTimeMS`: the database's own clear
time-out error must arrive before Temporal's start-to-close timeout would repeat the query."""


class ExportPolicy(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    tenant_field: str = "tenantId"
    export_collections: str = "*"
    max_pipeline_stages: Annotated[int, Field(gt=0)] = 100
    max_pipeline_depth: Annotated[int, Field(gt=0)] = 8
    max_pipeline_bytes: Annotated[int, Field(gt=0)] = 256 * 1024
    mongodb_max_time_ms: Annotated[int, Field(gt=0)] = 120_000
    activity_max_attempts: Annotated[int, Field(gt=0)] = 10
    export_deadline_seconds: Annotated[int, Field(gt=0)] = 24 * 3600
    export_max_rows: Annotated[int, Field(ge=0)] = 100_000_000
    export_max_bytes: Annotated[int, Field(ge=0)] = 100 * 1024 * 1024 * 1024
    export_max_columns: Annotated[int, Field(gt=0)] = 1000
    export_max_parallelism: Annotated[int, Field(ge=1)] = 8
    export_partition_rows: Annotated[int, Field(ge=1)] = 2_000_000

    @classmethod
    def of(cls, settings: Settings) -> ExportPolicy:
        return cls(**{name: getattr(settings, name) for name in cls.model_fields})

    def apply(self, settings: Settings) -> Settings:
        """`settings` with this policy's values in place of its own."""
        return settings.model_copy(update=self.model_dump())

    @property
    def query_timeout(self) -> timedelta:
        """Start-to-close timeout of an activity that runs one export query."""
        return timedelta(milliseconds=self.mongodb_max_time_ms) + QUERY_MARGIN
