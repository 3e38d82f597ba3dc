"""Configuration, read from the environment (and `.devstack/env` via the shell) with pydantic-settings.

Defaults match the local stack that `make services` starts. boto3 reads the AWS credentials
(`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`) itself; they are not repeated here.
"""

from __future__ import annotations

import logging
from functools import lru_cache
from typing import Annotated, Literal

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

MIB = 1024 * 1024
SEVEN_DAYS = 7 * 24 * 3600
DEVELOPMENT_SECRET = "change-me-local-development-only"
_log = logging.getLogger("settings")

ReadPreference = Literal[
    "primary", "primaryPreferred", "secondary", "secondaryPreferred", "nearest"
]


class InsecureSecretsError(RuntimeError):
    """A secret holds the published development default outside development mode."""


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="", case_sensitive=False, extra="ignore")

    # Temporal
    temporal_address: str = "127.0.0.1:7233"
    temporal_namespace: str = "default"
    temporal_task_queue: str = "exports"
    temporal_ui_url: str = "http://127.0.0.1:8233"

    # MongoDB (the source of exports)
    mongodb_uri: str = "mongodb://127.0.0.1:27017/"
    mongodb_database: str = "durable_export"
    mongodb_read_preference: ReadPreference = "secondaryPreferred"
    mongodb_max_time_ms: Annotated[int, Field(gt=0)] = 120_000
    mongodb_batch_size: Annotated[int, Field(gt=0, le=100_000)] = 1000
    csv_engine: Literal["python", "arrow"] = "python"
    """How CSV parts are encoded: `python` (the reference) or `arrow` (PyMongoArrow decoding
    and Arrow compute, the same bytes; README, "Formats")."""

    # S3 (the destination)
    s3_endpoint_url: str | None = "http://127.0.0.1:7070"
    s3_public_endpoint_url: str | None = None
    """The S3 endpoint as download links' users reach it, when it differs from S3_ENDPOINT_URL
    (e.g. `http://minio:9000` inside Docker, `http://127.0.0.1:9000` for a browser)."""
    s3_bucket: str = "exports"
    aws_region: str = "us-east-1"
    export_prefix: str = "exports/"
    part_size_bytes: Annotated[int, Field(ge=5 * MIB, le=5 * 1024 * MIB)] = 8 * MIB
    presign_expiry_seconds: Annotated[int, Field(gt=0, le=SEVEN_DAYS)] = 3600

    # What may be exported, and by whom
    export_collections: str = "*"
    """Comma-separated collections that may be read (the source and any `from`); `*` allows all."""
    tenant_field: str = "tenantId"
    max_pipeline_stages: Annotated[int, Field(gt=0)] = 100
    max_pipeline_depth: Annotated[int, Field(gt=0)] = 8
    max_pipeline_bytes: Annotated[int, Field(gt=0)] = 256 * 1024

    # Bounds on every export (snapshotted into each export's workflow input when accepted)
    activity_max_attempts: Annotated[int, Field(gt=0, le=1000)] = 10
    """Attempts of each export activity before the export fails with the last attempt's error."""
    export_deadline_seconds: Annotated[int, Field(gt=0)] = 24 * 3600
    """An export still running this long after it started fails, its upload aborted."""
    # Quotas: every cost of one export has a cap (0 turns a quota off)
    export_max_rows: Annotated[int, Field(ge=0)] = 100_000_000
    """Rows one export may write; more fails it (FAILED, upload aborted)."""
    export_max_bytes: Annotated[int, Field(ge=0)] = 100 * 1024 * MIB
    """Bytes (as written, after compression) one export may write; more fails it."""
    export_max_columns: Annotated[int, Field(gt=0)] = 1000
    """Most CSV columns frozen from the first rows when a request names none."""

    # Worker
    worker_max_concurrent_activities: Annotated[int, Field(gt=0, le=64)] = 4
    """Activities one worker runs at once; each holds at most one part in memory."""
    worker_graceful_shutdown_seconds: Annotated[int, Field(ge=0)] = 60

    # Worker processes (issue 13): `export-worker --role all` runs one workflow process and
    # this many activity processes; activities go to `<TEMPORAL_TASK_QUEUE>-activities`.
    worker_activity_processes: Annotated[int, Field(ge=0, le=64)] = 0
    """Activity worker processes `--role all` starts; 0 means one per CPU core."""
    worker_activity_executor: Literal["threads", "processes"] = "threads"
    """How one activity process runs the sync activities: `threads` (a thread pool of
    `WORKER_MAX_CONCURRENT_ACTIVITIES`; `--role all` starts `WORKER_ACTIVITY_PROCESSES` such
    processes) or `processes` (a process pool of `WORKER_ACTIVITY_PROCESSES` inside the one
    activity process `--role all` then starts; measured in `make bench` scenario 4)."""
    worker_activity_nice: Annotated[int, Field(ge=0, le=19)] = 10
    """CPU niceness an activity process adds to itself: on a shared host, batch work yields
    the CPU to orchestration, the API and Temporal (0 keeps the default priority)."""

    # Janitor: aborts multipart uploads that no running export owns
    janitor_max_age_seconds: Annotated[int, Field(ge=0)] = 24 * 3600
    janitor_interval_seconds: Annotated[int, Field(gt=0)] = 3600

    # Notifications
    notify_webhook_url: str | None = None
    """A webhook told of every export's end, besides the one a request names."""
    webhook_allowed_hosts: str = ""
    """Comma list of exact `host:port` webhook receivers that may be loopback or private
    addresses, and that may use plain http (e.g. `127.0.0.1:9000,hooks.internal:8080`)."""
    webhook_timeout_seconds: Annotated[float, Field(gt=0, le=60)] = 10.0
    """One total deadline for a webhook call: resolving, connecting, sending and reading."""
    webhook_max_response_bytes: Annotated[int, Field(ge=0)] = 64 * 1024
    """Most bytes of a webhook's answer read; more fails the call."""
    webhook_signing_secret: str = DEVELOPMENT_SECRET
    """Key of the HMAC-SHA256 signature in each webhook's `X-Export-Signature` header."""
    smtp_host: str | None = None
    """SMTP server of e-mail notifications; None (or empty) disables e-mail."""
    smtp_port: Annotated[int, Field(gt=0, le=65535)] = 25
    smtp_from: str = "durable-export@localhost"
    smtp_starttls: bool = False
    """Upgrade the SMTP connection with STARTTLS (certificate verified) before logging in."""
    smtp_username: str | None = None
    smtp_password: str | None = None
    notify_email: str | None = None
    """Recipient of e-mail notifications for exports whose request names none."""

    # API
    api_public_url: str = "http://127.0.0.1:8000"
    """Base URL of the API as clients reach it: notifications link to its stable download URL."""
    api_jwt_secret: str = DEVELOPMENT_SECRET
    development_mode: bool = False
    """Allow the published development secrets (local stack and tests only): outside it the API
    and the worker refuse to start with them."""
    api_jwt_issuer: str | None = None
    """When set, tokens must carry this `iss`."""
    api_jwt_audience: str | None = None
    """When set, tokens must carry this `aud`."""
    api_jwt_leeway_seconds: Annotated[int, Field(ge=0, le=300)] = 30
    """Clock skew accepted on `exp`, `nbf` and `iat`."""
    api_jwt_max_lifetime_seconds: Annotated[int, Field(gt=0)] = 24 * 3600
    """Longest accepted token lifetime (`exp - iat`)."""
    max_running_exports_per_tenant: Annotated[int, Field(gt=0)] = 20
    max_running_exports_per_user: Annotated[int, Field(gt=0)] = 3
    api_max_body_bytes: Annotated[int, Field(gt=0)] = 1024 * 1024
    """Largest request body the API reads; larger ones get 413 before anything is parsed."""
    api_planning_threads: Annotated[int, Field(gt=0, le=64)] = 2
    """Requests validated and planned at once, off the event loop."""
    api_planning_timeout_seconds: Annotated[float, Field(gt=0, le=300)] = 10.0
    """How long a request waits for a planning thread and its plan before a 503."""

    @field_validator("s3_endpoint_url", "s3_public_endpoint_url")
    @classmethod
    def _empty_endpoint_means_aws(cls, value: str | None) -> str | None:
        return value or None

    @field_validator(
        "smtp_host",
        "smtp_username",
        "smtp_password",
        "notify_email",
        "api_jwt_issuer",
        "api_jwt_audience",
    )
    @classmethod
    def _empty_means_unset(cls, value: str | None) -> str | None:
        """An empty variable (`SMTP_HOST=` in an env file) means unset."""
        return value or None

    def insecure_defaults(self) -> list[str]:
        """The secrets still at their published development defaults (say so loudly at start)."""
        return [
            name.upper()
            for name in ("api_jwt_secret", "webhook_signing_secret")
            if getattr(self, name) == DEVELOPMENT_SECRET
        ]

    def require_secure_secrets(self) -> None:
        """Refuse to start with a published development secret outside development mode."""
        insecure = self.insecure_defaults()
        for name in insecure if self.development_mode else []:
            _log.warning("%s is the published development default (DEVELOPMENT_MODE=true)", name)
        if insecure and not self.development_mode:
            raise InsecureSecretsError(
                f"{' and '.join(insecure)} still hold the published development secret: anyone "
                "could forge tokens or signatures with it. Set secrets of your own, or "
                "DEVELOPMENT_MODE=true for a local development stack."
            )

    @property
    def webhook_allow_list(self) -> frozenset[str]:
        """The `host:port` entries of WEBHOOK_ALLOWED_HOSTS, lower-cased."""
        return frozenset(
            entry.strip().lower()
            for entry in self.webhook_allowed_hosts.split(",")
            if entry.strip()
        )

    @property
    def exportable_collections(self) -> frozenset[str] | None:
        """The allowed collections, or None when every collection is allowed (`*`)."""
        names = {name.strip() for name in self.export_collections.split(",") if name.strip()}
        return None if "*" in names else frozenset(names)


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings, read once."""
    return Settings()
