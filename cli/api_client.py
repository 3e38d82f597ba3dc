"""A small synchronous client of the export API (httpx), turning error answers into `ApiFailure`."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import quote

import httpx

from cli.errors import ApiFailure, CliError

JsonObject = dict[str, Any]
TIMEOUT = httpx.Timeout(30.0, connect=10.0)


def _failure(response: httpx.Response) -> ApiFailure:
    try:
        error = response.json()["error"]
        return ApiFailure(
            int(error["status"]), str(error["code"]), str(error["message"]), error.get("details")
        )
    except (ValueError, KeyError, TypeError):  # not the API's error shape: a proxy, say
        text = response.text.strip()[:300] or response.reason_phrase
        return ApiFailure(response.status_code, "http_error", text)


class ApiClient:
    def __init__(self, base_url: str, token: str | None) -> None:
        self.base_url = base_url.rstrip("/")
        self.sent_token = token is not None
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self._http = httpx.Client(base_url=self.base_url, headers=headers, timeout=TIMEOUT)

    def close(self) -> None:
        self._http.close()

    def _request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        try:
            response = self._http.request(method, path, **kwargs)
        except httpx.HTTPError as exc:
            raise CliError(f"cannot reach the API at {self.base_url}: {exc}") from exc
        if response.status_code >= 400:
            raise _failure(response)
        return response

    def _json(self, method: str, path: str, **kwargs: Any) -> JsonObject:
        body: JsonObject = self._request(method, path, **kwargs).json()
        return body

    @staticmethod
    def _export_path(export_id: str, suffix: str = "") -> str:
        return f"/exports/{quote(export_id, safe='')}{suffix}"

    def start(self, body: JsonObject, idempotency_key: str | None = None) -> httpx.Response:
        headers = {"Idempotency-Key": idempotency_key} if idempotency_key else {}
        return self._request("POST", "/exports", json=body, headers=headers)

    def explain(self, body: JsonObject) -> JsonObject:
        return self._json("POST", "/exports/explain", json=body)

    def get(self, export_id: str) -> JsonObject:
        return self._json("GET", self._export_path(export_id))

    def list(self, limit: int, page_token: str | None) -> JsonObject:
        params: dict[str, str | int] = {"limit": limit}
        if page_token:
            params["page_token"] = page_token
        return self._json("GET", "/exports", params=params)

    def cancel(self, export_id: str) -> JsonObject:
        return self._json("DELETE", self._export_path(export_id))

    # -- schedules (recurring exports) -------------------------------------------------------

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

    def download_location(self, export_id: str) -> str:
        """The presigned URL the API's `/download` redirects to (a fresh one on each call)."""
        response = self._request("GET", self._export_path(export_id, "/download"))
        location = str(response.headers.get("Location", ""))
        if response.status_code not in (302, 303, 307) or not location:
            raise CliError(
                f"expected a redirect to the file from /download, got HTTP {response.status_code}"
            )
        return location


@contextmanager
def stream_object(url: str) -> Iterator[httpx.Response]:
    """GET a presigned URL. A client of its own: the bearer token must not go to the storage
    (a presigned request carrying a second credential is refused anyway)."""
    try:
        with httpx.stream("GET", url, timeout=TIMEOUT) as response:
            if response.status_code != 200:
                response.read()
                raise CliError(
                    f"the storage answered {response.status_code} for the download link: "
                    f"{response.text.strip()[:300]}"
                )
            yield response
    except httpx.HTTPError as exc:
        raise CliError(f"the download failed: {exc}") from exc
