"""Temporal visibility queries over the caller's exports: counting running ones, listing pages.

Values go into the query as single-quoted literals with `\\` and `'` backslash-escaped (the
grammar of Temporal's list filter). `api.auth` admits only identities the visibility stores
round-trip, so the owner filter matches exactly the caller's exports and nothing else.

Page tokens are Temporal's, signed with the API secret and bound to the owner: a forged or
borrowed token is refused with 422 before it reaches Temporal (which retries an unparsable
token for seconds, then fails with an unknown error).
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import timedelta

from temporalio.client import Client, WorkflowExecution

from api.errors import ApiError
from api.signing import keyed_digest, same_digest
from domain.models import Owner
from workflows.export_workflow import OWNER_ATTRIBUTE, TENANT_ATTRIBUTE, ExportWorkflow

EXPORT_WORKFLOW_TYPE = ExportWorkflow.__name__
VISIBILITY_RPC_TIMEOUT = timedelta(seconds=10)
_PAGE_MAC_BYTES = 16


def quote_literal(value: str) -> str:
    """`value` as a visibility-query string literal."""
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def owner_query(
    owner: Owner, *, running_only: bool = False, exclude_ids: Iterable[str] = ()
) -> str:
    """The filter matching `owner`'s exports (same user AND same tenant)."""
    clauses = [
        f"WorkflowType = {quote_literal(EXPORT_WORKFLOW_TYPE)}",
        f"{OWNER_ATTRIBUTE.name} = {quote_literal(owner.user_id)}",
        f"{TENANT_ATTRIBUTE.name} = {quote_literal(owner.tenant)}",
    ]
    if running_only:
        clauses.append("ExecutionStatus = 'Running'")
    excluded = sorted(exclude_ids)
    if excluded:
        clauses.append(f"WorkflowId NOT IN ({', '.join(map(quote_literal, excluded))})")
    return " AND ".join(clauses)


async def count_running(client: Client, owner: Owner, *, exclude_ids: Iterable[str] = ()) -> int:
    counted = await client.count_workflows(
        owner_query(owner, running_only=True, exclude_ids=exclude_ids),
        rpc_timeout=VISIBILITY_RPC_TIMEOUT,
    )
    return counted.count


@dataclass(frozen=True)
class Page:
    executions: Sequence[WorkflowExecution]
    next_page_token: str | None


def _page_mac(secret: str, owner: Owner, raw: bytes) -> bytes:
    return keyed_digest(secret, "page-token", owner.user_id, owner.tenant, raw.hex())[
        :_PAGE_MAC_BYTES
    ]


def encode_page_token(secret: str, owner: Owner, raw: bytes) -> str:
    token = _page_mac(secret, owner, raw) + raw
    return base64.urlsafe_b64encode(token).decode().rstrip("=")


def decode_page_token(secret: str, owner: Owner, token: str) -> bytes:
    invalid = ApiError(422, "invalid_page_token", "page_token is not one this API issued to you")
    try:
        data = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
    except (binascii.Error, ValueError) as exc:
        raise invalid from exc
    mac, raw = data[:_PAGE_MAC_BYTES], data[_PAGE_MAC_BYTES:]
    if not raw or not same_digest(mac, _page_mac(secret, owner, raw)):
        raise invalid
    return raw


async def list_page(
    client: Client, secret: str, owner: Owner, *, limit: int, page_token: str | None
) -> Page:
    """One page of `owner`'s exports in Temporal's visibility order: running ones first (newest
    start first), then finished ones (most recently finished first). ORDER BY is not available
    on every visibility store, so this order is the portable one."""
    executions = client.list_workflows(
        owner_query(owner),
        page_size=limit,
        next_page_token=decode_page_token(secret, owner, page_token) if page_token else None,
        rpc_timeout=VISIBILITY_RPC_TIMEOUT,
    )
    await executions.fetch_next_page()
    raw_next = executions.next_page_token
    return Page(
        executions=executions.current_page or [],
        next_page_token=encode_page_token(secret, owner, raw_next) if raw_next else None,
    )
