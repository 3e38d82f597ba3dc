"""The export endpoints. Thin: the work is in `api.exports_service`, `api.visibility` and
`api.downloads`; these only bind HTTP to it."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Body, Header, Path, Query, Response
from fastapi.responses import JSONResponse, RedirectResponse
from temporalio.service import RPCError, RPCStatusCode

from api.auth import OwnerDep
from api.deps import ServicesDep, TemporalDep
from api.downloads import presign_download
from api.errors import ApiError, error_responses
from api.exports_service import (
    IDEMPOTENCY_KEY_PATTERN,
    OwnedExport,
    find_owned,
    first_chunk_pipeline,
    read_progress,
    start_export,
    status_of,
)
from api.planning import OffLoopJsonRoute
from api.schemas import (
    REQUEST_EXAMPLES,
    CancelAccepted,
    ExplainResult,
    ExportAccepted,
    ExportPage,
    ExportSummary,
    ExportView,
)
from api.visibility import list_page
from domain import objects
from domain.formats.describe import describe_output
from domain.models import ExportRequest, ExportStatus, ProgressView
from domain.pipeline import partitioning
from domain.quotas import ExportQuotas

router = APIRouter(prefix="/exports", tags=["exports"], route_class=OffLoopJsonRoute)

RequestBody = Annotated[ExportRequest, Body(openapi_examples=REQUEST_EXAMPLES)]
ExportId = Annotated[str, Path(description="The id `POST /exports` returned.", max_length=100)]
IdempotencyKey = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        pattern=IDEMPOTENCY_KEY_PATTERN,
        description="Repeat a request safely: the same key from the same user gives the same "
        "export; the same key with a different body is refused with 409.",
    ),
]


@router.post(
    "",
    status_code=202,
    summary="Start an export",
    responses=error_responses(401, 409, 413, 422, 429, 503),
)
async def create_export(
    body: RequestBody,
    owner: OwnerDep,
    svc: ServicesDep,
    response: Response,
    idempotency_key: IdempotencyKey = None,
) -> ExportAccepted:
    plan = await svc.planner.plan(body, owner)  # before anything starts
    client = await svc.temporal.client()
    started = await start_export(client, svc.settings, svc.limiter, owner, body, idempotency_key)
    if started.replayed:
        response.headers["Idempotent-Replayed"] = "true"
    else:
        svc.metrics.exports_started.inc()
    status_url = f"{svc.settings.api_public_url.rstrip('/')}/exports/{started.export_id}"
    response.headers["Location"] = status_url
    return ExportAccepted(
        export_id=started.export_id,
        status_url=status_url,
        strategy=plan.explanation,
        status=started.status,
    )


@router.post(
    "/explain",
    summary="Validate and plan an export without starting it",
    responses=error_responses(401, 413, 422, 503),
)
async def explain_export(body: RequestBody, owner: OwnerDep, svc: ServicesDep) -> ExplainResult:
    plan = await svc.planner.plan(body, owner)
    return ExplainResult(
        strategy=plan.strategy,
        explanation=plan.explanation,
        pipeline=first_chunk_pipeline(plan),
        format=body.format,
        content_type=objects.content_type(body),
        quotas=ExportQuotas.of(svc.settings),
        output=describe_output(body),
        partitioning=partitioning.describe(
            plan,
            body,
            max_parallelism=svc.settings.export_max_parallelism,
            rows=svc.settings.export_partition_rows,
        ),
    )


@router.get(
    "",
    summary="List your exports, newest first",
    description="Running exports first (newest first), then finished ones (most recently "
    "finished first).",
    responses=error_responses(401, 422, 503),
)
async def list_exports(
    owner: OwnerDep,
    svc: ServicesDep,
    client: TemporalDep,
    limit: Annotated[int, Query(ge=1, le=100, description="Page size.")] = 20,
    page_token: Annotated[
        str | None, Query(min_length=1, max_length=4096, description="From the previous page.")
    ] = None,
) -> ExportPage:
    page = await list_page(
        client, svc.settings.api_jwt_secret, owner, limit=limit, page_token=page_token
    )
    return ExportPage(
        items=[
            ExportSummary(
                export_id=execution.id,
                status=status_of(execution),
                started_at=execution.start_time,
                finished_at=execution.close_time,
            )
            for execution in page.executions
        ],
        next_page_token=page.next_page_token,
    )


async def _progress(export: OwnedExport, svc: ServicesDep) -> ProgressView:
    progress = await read_progress(export)
    svc.metrics.observe_export(progress.export_id, progress.status)
    return progress


@router.get(
    "/{export_id}",
    summary="An export's progress, with a fresh download link once complete",
    responses=error_responses(401, 404, 503),
)
async def get_export(
    export_id: ExportId, owner: OwnerDep, svc: ServicesDep, client: TemporalDep
) -> ExportView:
    progress = await _progress(await find_owned(client, export_id, owner), svc)
    view = ExportView.model_validate(progress.model_dump(exclude={"object_key"}))
    if progress.status == ExportStatus.COMPLETED and progress.object_key:
        link = await presign_download(svc.s3, svc.settings, progress.object_key)
        view = view.model_copy(
            update={"download_url": link.url, "download_expires_at": link.expires_at}
        )
    return view


@router.delete(
    "/{export_id}",
    status_code=202,
    summary="Cancel an export",
    description="The workflow aborts the upload and reports CANCELLED.",
    responses=error_responses(401, 404, 409, 503),
)
async def cancel_export(
    export_id: ExportId, owner: OwnerDep, client: TemporalDep
) -> CancelAccepted:
    export = await find_owned(client, export_id, owner)
    status = status_of(export.description)
    already_ended = ApiError(409, "already_finished", f"export {export_id!r} already ended")
    if not export.is_running or status.is_terminal:  # terminal while it compensates
        raise already_ended
    if status == ExportStatus.COMPLETING:
        raise ApiError(
            409,
            "completing",
            f"export {export_id!r} has written every row and is completing its file; it can no "
            "longer be cancelled (delete the file once it is COMPLETED if it is not wanted)",
        )
    try:
        await export.handle.cancel()
    except RPCError as exc:
        if exc.status == RPCStatusCode.NOT_FOUND:  # it ended since describe()
            raise already_ended from exc
        raise
    return CancelAccepted(export_id=export_id, status=status)


@router.get(
    "/{export_id}/download",
    status_code=302,
    response_class=RedirectResponse,
    summary="Download a completed export (redirect to a fresh presigned URL)",
    description="With `Accept: application/json` the answer is `200` with the link as JSON "
    "(`download_url`, `download_expires_at`) instead of the redirect: a web page cannot read "
    "a cross-origin redirect's `Location`, and must not put the bearer token in a URL.",
    responses={
        302: {"description": "Found: `Location` is a presigned S3 URL."},
        **error_responses(401, 404, 409, 503),
    },
)
async def download_export(
    export_id: ExportId,
    owner: OwnerDep,
    svc: ServicesDep,
    client: TemporalDep,
    accept: Annotated[str, Header(include_in_schema=False)] = "",
) -> Response:
    progress = await _progress(await find_owned(client, export_id, owner), svc)
    if progress.status != ExportStatus.COMPLETED or not progress.object_key:
        raise ApiError(
            409,
            "not_complete",
            f"export {export_id!r} is {progress.status}; it can be downloaded once COMPLETED",
        )
    link = await presign_download(svc.s3, svc.settings, progress.object_key)
    if "application/json" in accept:
        return JSONResponse(
            {"download_url": link.url, "download_expires_at": link.expires_at.isoformat()},
            headers={"Cache-Control": "no-store"},
        )
    return RedirectResponse(link.url, status_code=302, headers={"Cache-Control": "no-store"})
