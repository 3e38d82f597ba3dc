"""One JSON error shape everywhere: `{"error": {"status", "code", "message", "details"?}}`.

Routes raise `ApiError`; the handlers installed here also turn FastAPI's own errors (validation,
unknown routes, wrong methods), an unreachable Temporal and any unexpected exception into that
shape. A client never sees a stack trace.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match, Route
from temporalio.service import RPCError, RPCStatusCode

from api.schemas import ErrorBody, ErrorDetail

log = logging.getLogger(__name__)

TEMPORAL_RETRY_AFTER_SECONDS = 5
_UNAVAILABLE = {
    RPCStatusCode.UNAVAILABLE,
    RPCStatusCode.DEADLINE_EXCEEDED,
    RPCStatusCode.RESOURCE_EXHAUSTED,
}
_HTTP_CODES = {
    400: "bad_request",
    401: "unauthorized",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "invalid_request",
    429: "too_many_requests",
    503: "unavailable",
}


class ApiError(Exception):
    """An error with its HTTP status, stable code and user-facing message."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        *,
        details: Any = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.details = details
        self.headers = dict(headers or {})


def error_response(
    status: int,
    code: str,
    message: str,
    *,
    details: Any = None,
    headers: Mapping[str, str] | None = None,
) -> JSONResponse:
    body = ErrorBody(error=ErrorDetail(status=status, code=code, message=message, details=details))
    return JSONResponse(
        body.model_dump(mode="json", exclude_none=True), status_code=status, headers=headers
    )


def error_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses` documenting these error statuses with the error shape."""
    return {
        status: {"model": ErrorBody, "description": HTTPStatus(status).phrase}
        for status in statuses
    }


def not_found(export_id: str) -> ApiError:
    """The same answer for an unknown export and for someone else's, so ids do not leak."""
    return ApiError(404, "not_found", f"export {export_id!r} not found")


def temporal_unavailable(reason: str) -> ApiError:
    return ApiError(
        503,
        "temporal_unavailable",
        f"the workflow service is unavailable: {reason}",
        headers={"Retry-After": str(TEMPORAL_RETRY_AFTER_SECONDS)},
    )


def _validation_details(exc: RequestValidationError) -> list[dict[str, Any]]:
    # Only location, message and type: `input` and `ctx` may hold anything, even raw bytes.
    return [
        {
            "loc": list(error.get("loc", ())),
            "message": error.get("msg", ""),
            "type": error.get("type"),
        }
        for error in exc.errors()
    ]


def _respond(exc: ApiError) -> JSONResponse:
    return error_response(
        exc.status, exc.code, exc.message, details=exc.details, headers=exc.headers
    )


async def _api_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ApiError)
    return _respond(exc)


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    status = exc.status_code
    headers = dict(exc.headers or {})
    if status == 404:
        message = f"no route {request.method} {request.url.path}"
    elif status == 405:
        message = f"method {request.method} is not allowed on {request.url.path}"
        headers = {**headers, "Allow": ", ".join(_allowed_methods(request))}
    else:
        message = exc.detail if isinstance(exc.detail, str) else HTTPStatus(status).phrase
    return error_response(status, _HTTP_CODES.get(status, "http_error"), message, headers=headers)


def _allowed_methods(request: Request) -> list[str]:
    """Every method of every route matching the path: Starlette's own `Allow` names only the
    first matching route's, and each method here is a route of its own."""
    methods: set[str] = set()
    for route in request.app.routes:
        if isinstance(route, Route) and route.methods:
            match, _ = route.matches({**request.scope, "method": next(iter(route.methods))})
            if match == Match.FULL:
                methods |= route.methods
    return sorted(methods)


async def _validation_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    details = _validation_details(exc)
    message = "the request is invalid"
    if details:
        where = ".".join(str(part) for part in details[0]["loc"])
        message = f"{where}: {details[0]['message']}"
    return error_response(422, "invalid_request", message, details=details)


async def _rpc_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RPCError)
    if exc.status in _UNAVAILABLE:
        return _respond(temporal_unavailable(exc.status.name.lower()))
    log.error("unexpected Temporal error %s: %s", exc.status.name, exc.message)
    return error_response(500, "internal_error", "the workflow service answered with an error")


async def _unexpected(_: Request, exc: Exception) -> JSONResponse:
    log.error("unhandled error", exc_info=exc)
    return error_response(500, "internal_error", "an internal error occurred")


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(ApiError, _api_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(RPCError, _rpc_error)
    app.add_exception_handler(Exception, _unexpected)
