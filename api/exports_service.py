"""What the export routes do with Temporal: plan, start (idempotently), find, read progress.

Ownership: every per-export call first describes the workflow and compares its `ExportOwner` and
`ExportTenant` search attributes with the caller's token; a mismatch answers exactly like an
unknown id (404), so ids of other users' exports cannot be probed.
"""

from __future__ import annotations

import hashlib
import json
import re
import secrets
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from temporalio.client import (
    Client,
    WorkflowExecution,
    WorkflowExecutionDescription,
    WorkflowExecutionStatus,
    WorkflowFailureError,
    WorkflowHandle,
)
from temporalio.common import (
    SearchAttributePair,
    TypedSearchAttributes,
    WorkflowIDConflictPolicy,
    WorkflowIDReusePolicy,
)
from temporalio.exceptions import WorkflowAlreadyStartedError
from temporalio.service import RPCError, RPCStatusCode

from api.errors import ApiError, not_found
from api.limits import RunningExportLimiter
from api.server_progress import progress_from_server
from api.signing import keyed_digest
from api.visibility import EXPORT_WORKFLOW_TYPE
from domain.export_policy import ExportPolicy
from domain.formats.relaxed_json import relaxed_json
from domain.models import ExportInput, ExportRequest, ExportStatus, Owner, ProgressView
from domain.pipeline.planning import ChunkPlan
from domain.settings import Settings
from workflows.export_workflow import (
    OWNER_ATTRIBUTE,
    STATUS_ATTRIBUTE,
    TENANT_ATTRIBUTE,
    ExportWorkflow,
)

ExportHandle = WorkflowHandle[ExportWorkflow, ProgressView]

EXPORT_ID_PREFIX = "exp_"
EXPORT_ID = re.compile(r"exp_[0-9a-f]{32}")
IDEMPOTENCY_KEY_PATTERN = r"^[\x20-\x7e]{1,200}$"
DESCRIBE_RPC_TIMEOUT = timedelta(seconds=10)
MEMO_REQUEST_DIGEST = "request_sha256"
MEMO_START_NONCE = "start_nonce"


# -- planning ---------------------------------------------------------------------------------


def first_chunk_pipeline(plan: ChunkPlan) -> list[dict[str, object]]:
    """The first chunk's pipeline as relaxed Extended JSON data (JSON-ready)."""
    pipeline: list[dict[str, object]] = json.loads(relaxed_json(plan.pipeline_for(None)))
    return pipeline


# -- ids and idempotency ----------------------------------------------------------------------


def export_id_for(settings: Settings, owner: Owner, idempotency_key: str | None) -> str:
    """A random id; with an idempotency key, an HMAC of (user, tenant, key): the same for the
    same caller and key, unguessable without the API secret, distinct across users."""
    if idempotency_key is None:
        return EXPORT_ID_PREFIX + secrets.token_hex(16)
    digest = keyed_digest(
        settings.api_jwt_secret, "export-id", owner.user_id, owner.tenant, idempotency_key
    )
    return EXPORT_ID_PREFIX + digest[:16].hex()


def request_digest(request: ExportRequest) -> str:
    """A hash of the request as parsed (defaults filled in; key order kept, since it matters in
    a `$sort`), stored in the workflow memo to recognise a replay of the same request."""
    return hashlib.sha256(request.model_dump_json().encode()).hexdigest()


@dataclass(frozen=True)
class StartResult:
    export_id: str
    status: ExportStatus
    replayed: bool


async def _memo_str(description: WorkflowExecutionDescription, key: str) -> str | None:
    value = await description.memo_value(key, None)
    return value if isinstance(value, str) else None


async def _replay(description: WorkflowExecutionDescription, digest: str) -> StartResult:
    """The existing export for a repeated idempotency key, or 409 if its body differed."""
    if await _memo_str(description, MEMO_REQUEST_DIGEST) != digest:
        raise ApiError(
            409,
            "idempotency_key_reused",
            "this Idempotency-Key was already used with a different request body",
        )
    return StartResult(description.id, status_of(description), replayed=True)


async def _describe_or_none(client: Client, export_id: str) -> WorkflowExecutionDescription | None:
    try:
        return await client.get_workflow_handle(export_id).describe(
            rpc_timeout=DESCRIBE_RPC_TIMEOUT
        )
    except RPCError as exc:
        if exc.status == RPCStatusCode.NOT_FOUND:
            return None
        raise


async def _start_workflow(
    client: Client, settings: Settings, export: ExportInput, memo: dict[str, str]
) -> ExportHandle:
    owner = export.owner
    return await client.start_workflow(
        ExportWorkflow.run,
        export,
        id=export.export_id,
        task_queue=settings.temporal_task_queue,
        id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
        id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
        search_attributes=TypedSearchAttributes(
            [
                SearchAttributePair(OWNER_ATTRIBUTE, owner.user_id),
                SearchAttributePair(TENANT_ATTRIBUTE, owner.tenant),
                SearchAttributePair(STATUS_ATTRIBUTE, ExportStatus.PENDING.value),
            ]
        ),
        memo=memo,
        static_summary=f"export of {export.request.collection} for {owner.user_id}",
    )


async def start_export(
    client: Client,
    settings: Settings,
    limiter: RunningExportLimiter,
    owner: Owner,
    request: ExportRequest,
    idempotency_key: str | None,
) -> StartResult:
    """Start the export workflow, or find the one this idempotency key already started.

    A repeated key is answered before the running-export limit is checked: repeating a request
    never costs a slot. Two concurrent first requests with one key both start with
    USE_EXISTING, so only one workflow runs; the memo's nonce tells which request started it.
    """
    export_id = export_id_for(settings, owner, idempotency_key)
    digest = request_digest(request)
    if idempotency_key is not None:
        existing = await _describe_or_none(client, export_id)
        if existing is not None:
            return await _replay(existing, digest)
    export = ExportInput(
        export_id=export_id,
        owner=owner,
        request=request,
        requested_at=datetime.now(UTC),
        policy=ExportPolicy.of(settings),
    )
    nonce = uuid.uuid4().hex
    async with limiter.slot(client, owner) as record_start:
        try:
            handle = await _start_workflow(
                client, settings, export, {MEMO_REQUEST_DIGEST: digest, MEMO_START_NONCE: nonce}
            )
        except WorkflowAlreadyStartedError:
            # The key's export closed since the describe above (its id cannot be reused).
            closed = await _describe_or_none(client, export_id)
            assert closed is not None
            return await _replay(closed, digest)
        record_start(export_id)
    if idempotency_key is None:
        return StartResult(export_id, ExportStatus.PENDING, replayed=False)
    description = await handle.describe(rpc_timeout=DESCRIBE_RPC_TIMEOUT)
    if await _memo_str(description, MEMO_START_NONCE) == nonce:
        return StartResult(export_id, ExportStatus.PENDING, replayed=False)
    return await _replay(description, digest)


# -- finding and reading ----------------------------------------------------------------------


def status_of(execution: WorkflowExecution) -> ExportStatus:
    """The export status from what visibility knows: the execution's own status once it is
    closed (a terminated export never upserted its final status), else the search attribute."""
    match execution.status:
        case WorkflowExecutionStatus.COMPLETED:
            return ExportStatus.COMPLETED
        case WorkflowExecutionStatus.CANCELED:
            return ExportStatus.CANCELLED
        case WorkflowExecutionStatus.RUNNING | WorkflowExecutionStatus.CONTINUED_AS_NEW | None:
            value = execution.typed_search_attributes.get(STATUS_ATTRIBUTE)
            try:
                return ExportStatus(value) if value else ExportStatus.PENDING
            except ValueError:
                return ExportStatus.PENDING
        case _:
            return ExportStatus.FAILED


def is_owned_by(execution: WorkflowExecution, owner: Owner) -> bool:
    attributes = execution.typed_search_attributes
    return (
        execution.workflow_type == EXPORT_WORKFLOW_TYPE
        and attributes.get(OWNER_ATTRIBUTE) == owner.user_id
        and attributes.get(TENANT_ATTRIBUTE) == owner.tenant
    )


@dataclass(frozen=True)
class OwnedExport:
    handle: ExportHandle
    description: WorkflowExecutionDescription

    @property
    def is_running(self) -> bool:
        return self.description.status == WorkflowExecutionStatus.RUNNING


async def find_owned(client: Client, export_id: str, owner: Owner) -> OwnedExport:
    """The caller's export, or 404 for an unknown id and for anyone else's export alike."""
    if not EXPORT_ID.fullmatch(export_id):
        raise not_found(export_id)
    description = await _describe_or_none(client, export_id)
    if description is None or not is_owned_by(description, owner):
        raise not_found(export_id)
    return OwnedExport(client.get_workflow_handle_for(ExportWorkflow.run, export_id), description)


async def read_progress(export: OwnedExport) -> ProgressView:
    """The export's progress, from the Temporal server alone: no workflow query, so it answers
    the same while every worker is busy or stopped.

    The memo the workflow publishes (plus the heartbeat of the part in flight) gives the
    counters. Runs that published none (started before the memo existed): a completed one's
    progress is its result in history; others show what `describe()` knows (status, start and
    end; counters unknown, so zero, and no strategy).
    """
    description = export.description
    published = await progress_from_server(description)
    if published is not None:
        if published.status.is_terminal and published.error is None and not export.is_running:
            error = await _failure_message(export)
            if error is not None:
                published = published.model_copy(update={"error": error})
        return published
    if description.status == WorkflowExecutionStatus.COMPLETED:
        return await export.handle.result(rpc_timeout=DESCRIBE_RPC_TIMEOUT)
    return ProgressView(
        export_id=description.id,
        status=status_of(description),
        strategy=None,
        rows=0,
        bytes=0,
        parts=0,
        started_at=description.start_time,
        finished_at=description.close_time,
        rows_per_second=None,
        error=await _failure_message(export),
        object_key=None,
    )


async def _failure_message(export: OwnedExport) -> str | None:
    """Why a closed export ended, from its result in history; None while it runs."""
    if export.is_running:
        return None
    try:
        await export.handle.result(rpc_timeout=DESCRIBE_RPC_TIMEOUT)
    except WorkflowFailureError as exc:
        return str(exc.cause) if exc.cause is not None else str(exc)
    return None
