"""The CLI's view of `durable_export.client`: the same client, whose errors end a command with
the exit code they call for (`ApiFailure` for the API's error answers, `CliError` otherwise)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx

from cli.errors import ApiFailure, CliError
from durable_export.client import (
    ExportApiError,
    ExportClient,
    ExportServiceError,
    JsonObject,
    open_download,
)

__all__ = ["ApiClient", "JsonObject", "stream_object"]


def cli_error(exc: ExportServiceError) -> CliError:
    if isinstance(exc, ExportApiError):
        return ApiFailure(exc.status, exc.code, exc.api_message, exc.details)
    return CliError(exc.message)


class ApiClient(ExportClient):
    def _request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        try:
            return super()._request(method, path, **kwargs)
        except ExportServiceError as exc:
            raise cli_error(exc) from exc

    def download_location(self, export_id: str) -> str:
        try:
            return super().download_location(export_id)
        except ExportServiceError as exc:
            raise cli_error(exc) from exc


@contextmanager
def stream_object(url: str) -> Iterator[httpx.Response]:
    """`durable_export.client.open_download`, its errors as `CliError`s."""
    try:
        with open_download(url) as response:
            yield response
    except ExportServiceError as exc:
        raise cli_error(exc) from exc
