"""A small synchronous client of the export API (httpx).

`exportctl` is built on it; applications can import it too::

    from durable_export import ExportClient

    with ExportClient("http://127.0.0.1:8000", token) as exports:
        started = exports.start({"collection": "zips"}, idempotency_key=str(uuid.uuid4()))
        view = exports.wait_for_export(started.json()["export_id"], timeout=600)
        if view["status"] == "COMPLETED":
            exports.download(view["export_id"], "zips.csv")

Every error answer of the API becomes an `ExportApiError` (its `status`, `code`, `message` and
`details`, the API's one error shape); an unreachable API an `ExportConnectionError`; a failed
download of the stored object a `DownloadError`. All three are `ExportServiceError`s.
"""

from __future__ import annotations

import os
import random
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from types import TracebackType
from typing import Any
from urllib.parse import quote

import httpx

JsonObject = dict[str, Any]
TIMEOUT = httpx.Timeout(30.0, connect=10.0)
TERMINAL = frozenset({"COMPLETED", "FAILED", "CANCELLED"})
CHUNK_BYTES = 1024 * 1024


class ExportServiceError(Exception):
    """Anything that stopped a call of the client; `message` says what."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class ExportApiError(ExportServiceError):
    """An error answer of the API, in its one shape `{"error": {status, code, message, details}}`."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        details: Any = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code
        self.api_message = message
        self.details = details
        self.retry_after = retry_after

    @classmethod
    def of(cls, response: httpx.Response) -> ExportApiError:
        retry_after: float | None = None
        with suppress(ValueError):
            retry_after = float(response.headers.get("Retry-After", ""))
        try:
            error = response.json()["error"]
            return cls(
                int(error["status"]),
                str(error["code"]),
                str(error["message"]),
                error.get("details"),
                retry_after,
            )
        except (ValueError, KeyError, TypeError):  # not the API's error shape: a proxy, say
            text = response.text.strip()[:300] or response.reason_phrase
            return cls(response.status_code, "http_error", text, None, retry_after)


class ExportConnectionError(ExportServiceError):
    """The API could not be reached (or did not answer in time)."""


class DownloadError(ExportServiceError):
    """The stored object could not be fetched from its presigned link."""


class ExportClient:
    """The export API for one bearer token. Use it as a context manager, or `close()` it."""

    def __init__(self, base_url: str, token: str | None, timeout: httpx.Timeout = TIMEOUT) -> None:
        self.base_url = base_url.rstrip("/")
        self.sent_token = token is not None
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self._http = httpx.Client(base_url=self.base_url, headers=headers, timeout=timeout)

    def __enter__(self) -> ExportClient:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    def _request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        try:
            response = self._http.request(method, path, **kwargs)
        except httpx.HTTPError as exc:
            raise ExportConnectionError(f"cannot reach the API at {self.base_url}: {exc}") from exc
        if response.status_code >= 400:
            raise ExportApiError.of(response)
        return response

    def _json(self, method: str, path: str, **kwargs: Any) -> JsonObject:
        body: JsonObject = self._request(method, path, **kwargs).json()
        return body

    @staticmethod
    def _export_path(export_id: str, suffix: str = "") -> str:
        return f"/exports/{quote(export_id, safe='')}{suffix}"

    # -- exports -------------------------------------------------------------------------------

    def start(self, body: JsonObject, idempotency_key: str | None = None) -> httpx.Response:
        """`POST /exports`; the response (202, or 200 with `Idempotent-Replayed: true` when the
        same key and body were sent before). Its JSON carries `export_id`."""
        headers = {"Idempotency-Key": idempotency_key} if idempotency_key else {}
        return self._request("POST", "/exports", json=body, headers=headers)

    def explain(self, body: JsonObject) -> JsonObject:
        return self._json("POST", "/exports/explain", json=body)

    def get(self, export_id: str) -> JsonObject:
        return self._json("GET", self._export_path(export_id))

    def list(self, limit: int = 20, page_token: str | None = None) -> JsonObject:
        params: dict[str, str | int] = {"limit": limit}
        if page_token:
            params["page_token"] = page_token
        return self._json("GET", "/exports", params=params)

    def cancel(self, export_id: str) -> JsonObject:
        return self._json("DELETE", self._export_path(export_id))

    def wait_for_export(
        self,
        export_id: str,
        timeout: float | None = None,
        first_interval: float = 0.5,
        max_interval: float = 10.0,
        max_transient_failures: int = 5,
    ) -> JsonObject:
        """Poll until the export is COMPLETED, FAILED or CANCELLED and return its last view.

        The interval grows by half each time (with jitter) up to `max_interval`; an unreachable
        API or a 5xx answer is retried up to `max_transient_failures` times in a row; a 4xx answer
        is raised at once. `TimeoutError` after `timeout` seconds (None: no limit)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        interval, failures = first_interval, 0
        while True:
            try:
                view = self.get(export_id)
                failures = 0
                if view["status"] in TERMINAL:
                    return view
            except ExportServiceError as exc:
                transient = not isinstance(exc, ExportApiError) or exc.status >= 500
                failures += 1
                if not transient or failures > max_transient_failures:
                    raise
            pause = interval * random.uniform(0.8, 1.2)
            if deadline is not None and time.monotonic() + pause > deadline:
                raise TimeoutError(f"export {export_id} did not end within {timeout:g} s")
            time.sleep(pause)
            interval = min(max_interval, interval * 1.5)

    def download_location(self, export_id: str) -> str:
        """The presigned URL the API's `/download` redirects to (a fresh one on each call)."""
        response = self._request("GET", self._export_path(export_id, "/download"))
        location = str(response.headers.get("Location", ""))
        if response.status_code not in (302, 303, 307) or not location:
            raise ExportServiceError(
                f"expected a redirect to the file from /download, got HTTP {response.status_code}"
            )
        return location

    def download(self, export_id: str, path: str | os.PathLike[str]) -> int:
        """Write the export's file to `path` as stored (a gzip export stays gzip), through a
        hidden `.part` file renamed into place, so no half-written file is left; its size."""
        target = Path(path)
        partial = target.with_name(f".{target.name}.part")
        written = 0
        try:
            with (
                open_download(self.download_location(export_id)) as response,
                partial.open("wb") as out,
            ):
                for chunk in response.iter_raw(CHUNK_BYTES):
                    out.write(chunk)
                    written += len(chunk)
            partial.replace(target)
        finally:
            partial.unlink(missing_ok=True)
        return written

    # -- schedules (recurring exports) -----------------------------------------------------------

    @staticmethod
    def _schedule_path(schedule_id: str, suffix: str = "") -> str:
        return f"/schedules/{quote(schedule_id, safe='')}{suffix}"

    def create_schedule(
        self, body: JsonObject, idempotency_key: str | None = None
    ) -> httpx.Response:
        headers = {"Idempotency-Key": idempotency_key} if idempotency_key else {}
        return self._request("POST", "/schedules", json=body, headers=headers)

    def list_schedules(self) -> JsonObject:
        return self._json("GET", "/schedules")

    def get_schedule(self, schedule_id: str) -> JsonObject:
        return self._json("GET", self._schedule_path(schedule_id))

    def update_schedule(self, schedule_id: str, body: JsonObject) -> JsonObject:
        return self._json("PATCH", self._schedule_path(schedule_id), json=body)

    def schedule_action(self, schedule_id: str, action: str) -> JsonObject:
        """`pause`, `resume` or `run`."""
        return self._json("POST", self._schedule_path(schedule_id, f"/{action}"))

    def delete_schedule(self, schedule_id: str) -> None:
        self._request("DELETE", self._schedule_path(schedule_id))


@contextmanager
def open_download(url: str) -> Iterator[httpx.Response]:
    """GET a presigned URL, streaming. A client of its own: the bearer token must not go to the
    storage (a presigned request carrying a second credential is refused anyway)."""
    try:
        with httpx.stream("GET", url, timeout=TIMEOUT) as response:
            if response.status_code != 200:
                response.read()
                raise DownloadError(
                    f"the storage answered {response.status_code} for the download link: "
                    f"{response.text.strip()[:300]}"
                )
            yield response
    except httpx.HTTPError as exc:
        raise DownloadError(f"the download failed: {exc}") from exc
