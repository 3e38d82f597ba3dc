"""Prometheus metrics: requests by route template and status, latency, exports started/finished.

Each app has its own registry, so several apps in one process (tests) do not collide. Routes are
labelled by their template (`/exports/{export_id}`), never by the raw path, to bound cardinality.
"""

from __future__ import annotations

import time
from collections import OrderedDict

from prometheus_client import CollectorRegistry, Counter, Histogram
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from domain.models import ExportStatus

UNMATCHED_ROUTE = "<unmatched>"
_SEEN_FINISHED_CAPACITY = 10_000


class ApiMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "export_api_requests_total",
            "HTTP requests by method, route template and status.",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "export_api_request_duration_seconds",
            "HTTP request latency by method, route template and status.",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.exports_started = Counter(
            "export_api_exports_started_total", "Exports started.", registry=self.registry
        )
        self.exports_finished = Counter(
            "export_api_exports_finished_total",
            "Exports seen finished through this API process (each counted once), by status.",
            ["status"],
            registry=self.registry,
        )
        self._seen_finished: OrderedDict[str, None] = OrderedDict()

    def observe_export(self, export_id: str, status: ExportStatus) -> None:
        """Count a finished export the first time this process sees it (bounded memory)."""
        if not status.is_terminal or export_id in self._seen_finished:
            return
        self._seen_finished[export_id] = None
        if len(self._seen_finished) > _SEEN_FINISHED_CAPACITY:
            self._seen_finished.popitem(last=False)
        self.exports_finished.labels(status=status.value).inc()


class MetricsMiddleware:
    """Pure ASGI middleware (no response buffering) timing every HTTP request."""

    def __init__(self, app: ASGIApp, metrics: ApiMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status = 500  # what the client gets if the app fails before answering
        started = time.perf_counter()

        async def send_with_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_with_status)
        finally:
            path = getattr(scope.get("route"), "path", None)  # set by the router on a match
            template = path if isinstance(path, str) else UNMATCHED_ROUTE
            labels = {"method": scope["method"], "route": template, "status": str(status)}
            self.metrics.requests.labels(**labels).inc()
            self.metrics.latency.labels(**labels).observe(time.perf_counter() - started)
