"""One entry point from a request to its chunk plan, shared by the API and the activities."""

from __future__ import annotations

from domain.models import ExportRequest, Owner
from domain.pipeline.extended_json import ExtendedJsonError
from domain.pipeline.planning import ChunkPlan, PlanRefused, plan_chunks
from domain.pipeline.validation import PipelineRejected, validate_pipeline
from domain.settings import Settings
from domain.webhook_policy import static_refusal


class ExportRefused(ValueError):
    """The request cannot be exported as asked. `str()` is `<path>: <reason>`; `path` says where
    in the request (`pipeline[2].$lookup.from`), `reason` why."""

    def __init__(self, path: str, reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.path = path
        self.reason = reason


def plan_export(request: ExportRequest, owner: Owner, settings: Settings) -> ChunkPlan:
    """Validate the request's pipeline for its owner's tenant and plan how to read it in chunks.

    A webhook URL the policy refuses from the URL alone is refused here too, before anything
    starts (the worker checks the resolved address again at call time)."""
    webhook = request.notify.webhook_url if request.notify else None
    if webhook is not None:
        refusal = static_refusal(webhook, settings.webhook_allow_list)
        if refusal is not None:
            raise ExportRefused("notify.webhook_url", refusal)
    try:
        pipeline = validate_pipeline(
            request.pipeline, collection=request.collection, tenant=owner.tenant, settings=settings
        )
        return plan_chunks(pipeline)
    except (PipelineRejected, PlanRefused, ExtendedJsonError) as exc:
        raise ExportRefused(exc.path, exc.reason) from exc
