"""Telling an export's owner that it ended: a log line always, a signed webhook and an e-mail when
configured."""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Protocol

from temporalio import activity

from activities.email_notifier import EmailNotifier
from activities.s3_client import make_presigning_client
from activities.webhook_transport import post_json
from domain.activity_io import Outcome
from domain.models import ExportStatus
from domain.objects import content_disposition
from domain.settings import Settings

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

logger = logging.getLogger(__name__)
SIGNATURE_HEADER = "X-Export-Signature"


class Notifier(Protocol):
    def send(self, outcome: Outcome, payload: dict[str, Any]) -> None: ...


class LogNotifier:
    def send(self, outcome: Outcome, payload: dict[str, Any]) -> None:
        logger.info("export %s ended: %s", outcome.export.export_id, json.dumps(payload))


def sign(secret: str, body: bytes) -> str:
    """The `X-Export-Signature` value: `sha256=<hex HMAC of the raw body>`."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


class WebhookNotifier:
    """POSTs the payload as JSON, signed, to the export's webhook and the configured default one.

    A non-2xx answer raises, so the activity's retry policy retries with backoff.
    """

    def __init__(self, settings: Settings, timeout: float = 10.0) -> None:
        self._settings = settings
        self._secret = settings.webhook_signing_secret
        self._default_url = settings.notify_webhook_url
        self._timeout = timeout

    def send(self, outcome: Outcome, payload: dict[str, Any]) -> None:
        notify = outcome.export.request.notify
        urls = [u for u in (notify.webhook_url if notify else None, self._default_url) if u]
        body = json.dumps(payload, separators=(",", ":")).encode()
        headers = {"Content-Type": "application/json", SIGNATURE_HEADER: sign(self._secret, body)}
        for url in urls:
            post_json(url, body, headers, self._settings)  # policy, deadline and size cap


class NotifyActivities:
    def __init__(
        self,
        settings: Settings,
        s3: S3Client | None = None,
        notifiers: list[Notifier] | None = None,
    ) -> None:
        self._settings = settings
        self._s3 = s3 or make_presigning_client(settings)  # only presigns links
        self._notifiers = notifiers or [
            LogNotifier(),
            WebhookNotifier(settings),
            EmailNotifier(settings),
        ]

    def payload(self, outcome: Outcome) -> dict[str, Any]:
        export_id = outcome.export.export_id
        payload: dict[str, Any] = {
            "export_id": export_id,
            "status": outcome.status.value,
            "rows": outcome.rows,
            "bytes": outcome.bytes,
            "error": outcome.error,
            "download_url": None,
            "download_url_expires_at": None,
            "api_download_url": f"{self._settings.api_public_url.rstrip('/')}/exports/{export_id}/download",
        }
        if outcome.status == ExportStatus.COMPLETED and outcome.object_key and outcome.filename:
            expiry = self._settings.presign_expiry_seconds
            payload["download_url"] = self._s3.generate_presigned_url(
                "get_object",
                Params={
                    "Bucket": self._settings.s3_bucket,
                    "Key": outcome.object_key,
                    "ResponseContentDisposition": content_disposition(outcome.filename),
                },
                ExpiresIn=expiry,
            )
            expires = datetime.now(UTC) + timedelta(seconds=expiry)
            payload["download_url_expires_at"] = expires.isoformat().replace("+00:00", "Z")
        return payload

    @activity.defn
    def notify(self, outcome: Outcome) -> None:
        payload = self.payload(outcome)
        for notifier in self._notifiers:
            notifier.send(outcome, payload)
