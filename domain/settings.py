"""Configuration, read from the environment (and `.devstack/env` via the shell) with pydantic-settings.

Defaults match the local stack that `make services` starts. boto3 reads the AWS credentials
(`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`) itself; they are not repeated here.
"""

from __future__ import annotations

import logging
from functools import lru_cache
from typing import Annotated, Literal

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

MIB = 1024 * 1024
SEVEN_DAYS = 7 * 24 * 3600
DEVELOPMENT_SECRET = "change-me-local-development-only"
_log = logging.getLogger("settings")
ASYMMETRIC_ALGORITHMS = frozenset(
    {"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"}
)
"""What an identity provider's tokens may be signed with: never `none` or an HMAC, whose key
would be the public key anyone can fetch (the HS/RS confusion)."""

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
    csv_engine: Literal["python", "arrow"] = "arrow"
    """How CSV and JSON Lines parts are encoded: `arrow` (PyMongoArrow decoding and Arrow
    compute, falling back to Python where it cannot be exact) or `python` (the reference); the
    same bytes either way (README, "Formats")."""

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
    # Parallel exports (issue 16): partitions of one export run at once (`domain.pipeline.partitioning`)
    export_max_parallelism: Annotated[int, Field(ge=1, le=1000)] = 8
    """Most partitions one export runs at once (caps `parallelism`, `auto` included)."""
    export_partition_rows: Annotated[int, Field(ge=1)] = 2_000_000
    """`parallelism: auto` asks for one partition per this many rows (keys counted)."""
    partition_prefix: str = "export-partitions/"
    """Where partitions write their temporary objects (deleted once composed; the janitor
    removes what a terminated export left)."""

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
    api_jwt_accept_hs256: bool = True
    """Accept HS256 tokens signed with API_JWT_SECRET (service tokens, `exportctl token`). With
    an identity provider configured, `false` leaves its tokens as the only way in."""

    # Tokens from an identity provider (README, "Integrate with your app"): asymmetric JWTs
    # verified against the provider's JWKS. Off while API_JWKS_URL is unset.
    api_jwks_url: str | None = None
    """The identity provider's JWKS document (e.g. `https://tenant.auth0.com/.well-known/jwks.json`)."""
    api_jwks_issuer: str | None = None
    """The `iss` the provider's tokens must carry (required with API_JWKS_URL)."""
    api_jwks_audience: str | None = None
    """The `aud` the provider's tokens must carry: this API's identifier at the provider
    (required with API_JWKS_URL, so a token the provider issued to another app is refused)."""
    api_jwks_algorithms: str = "RS256,ES256,EdDSA"
    """Comma list of the signature algorithms accepted from the provider; each must also match
    its key's type (RSA: RS*/PS*, EC P-256: ES256, P-384: ES384, P-521: ES512, Ed25519: EdDSA)."""
    api_jwks_user_claim: str = "sub"
    """The claim holding the user id (an exact claim name, e.g. `sub` or `https://acme.example/uid`)."""
    api_jwks_tenant_claim: str = "tenant"
    """The claim holding the tenant (e.g. `org_id`, or a namespaced `https://acme.example/tenant`)."""
    api_jwks_cache_seconds: Annotated[float, Field(gt=0, le=86_400)] = 300
    """How long the fetched keys are used before fetching them again."""
    api_jwks_refresh_cooldown_seconds: Annotated[float, Field(ge=0, le=3600)] = 30
    """Least time between two fetches caused by a token whose `kid` is not among the cached keys
    (a key rotation): forged `kid`s cannot make the API hammer the provider."""
    api_jwks_timeout_seconds: Annotated[float, Field(gt=0, le=60)] = 5
    """Deadline of one JWKS fetch; a provider that does not answer gets 503."""
    max_running_exports_per_tenant: Annotated[int, Field(gt=0)] = 20
    max_running_exports_per_user: Annotated[int, Field(gt=0)] = 3
    max_schedules_per_user: Annotated[int, Field(gt=0)] = 10
    """Recurring exports (`POST /schedules`) one user may have."""
    max_schedules_per_tenant: Annotated[int, Field(gt=0)] = 100
    """Recurring exports all users of one tenant may have together."""
    schedule_min_interval_seconds: Annotated[int, Field(gt=0)] = 300
    """Shortest `interval_seconds` a schedule may ask for."""
    schedule_catchup_window_seconds: Annotated[int, Field(ge=10)] = 3600
    """How late a missed run may still start after an outage (Temporal's catch-up window;
    with the SKIP overlap policy, the missed times of one outage start one run, not many)."""
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
        "api_jwks_url",
        "api_jwks_issuer",
        "api_jwks_audience",
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

    @model_validator(mode="after")
    def _identity_provider_is_complete(self) -> Settings:
        if problem := self.identity_provider_problem():
            raise ValueError(problem)
        return self

    def identity_provider_problem(self) -> str | None:
        """Why the identity-provider settings cannot verify tokens safely, or None.

        Issuer and audience are required: without an audience check, any token the provider
        issued to any of its applications would open this API."""
        if self.api_jwks_url is None:
            if not self.api_jwt_accept_hs256:
                return "API_JWT_ACCEPT_HS256=false needs API_JWKS_URL: no token could be accepted"
            return None
        missing = [
            name.upper()
            for name in ("api_jwks_issuer", "api_jwks_audience")
            if getattr(self, name) is None
        ]
        if missing:
            return f"API_JWKS_URL is set but {' and '.join(missing)} not: both are required"
        if not self.jwks_algorithms:
            return "API_JWKS_ALGORITHMS names no algorithm"
        if unknown := sorted(self.jwks_algorithms - ASYMMETRIC_ALGORITHMS):
            return (
                f"API_JWKS_ALGORITHMS may only name asymmetric algorithms "
                f"({', '.join(sorted(ASYMMETRIC_ALGORITHMS))}), not {', '.join(unknown)}"
            )
        return None

    @property
    def jwks_algorithms(self) -> frozenset[str]:
        """The algorithms of API_JWKS_ALGORITHMS."""
        return frozenset(
            name.strip() for name in self.api_jwks_algorithms.split(",") if name.strip()
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
