"""Telling an export's owner that it ended: a log line always, a signed webhook and an e-mail when
configured.

Each channel is its own activity (`notify_channel`) with its own bounded retries, so a failing
webhook never blocks or repeats the e-mail, the operator's webhook or another channel.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Protocol

from temporalio import activity

from activities.email_notifier import EmailNotifier
from activities.webhook_transport import post_json
from connections.s3 import make_presigning_client
from domain.activity_io import Channel, ChannelNotice, Outcome
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


def request_webhook_url(outcome: Outcome, settings: Settings) -> str | None:
    notify = outcome.export.request.notify
    return notify.webhook_url if notify else None


def operator_webhook_url(outcome: Outcome, settings: Settings) -> str | None:
    return settings.notify_webhook_url


class WebhookNotifier:
    """POSTs the payload as JSON, signed, to the webhook `url_of` picks (the request's or the
    operator's). A non-2xx answer raises, so the activity's retry policy retries with backoff.
    """

    def __init__(
        self,
        settings: Settings,
        url_of: Callable[[Outcome, Settings], str | None] = request_webhook_url,
    ) -> None:
        self._settings = settings
        self._secret = settings.webhook_signing_secret
        self._url_of = url_of

    def send(self, outcome: Outcome, payload: dict[str, Any]) -> None:
        url = self._url_of(outcome, self._settings)
        if not url:
            return
        body = json.dumps(payload, separators=(",", ":")).encode()
        headers = {"Content-Type": "application/json", SIGNATURE_HEADER: sign(self._secret, body)}
        post_json(url, body, headers, self._settings)  # policy, deadline and size cap


class NotifyActivities:
    def __init__(
        self,
        settings: Settings,
        s3: S3Client | None = None,
        channels: Mapping[Channel, Notifier] | None = None,
    ) -> None:
        self._settings = settings
        self._s3 = s3 or make_presigning_client(settings)  # only presigns links
        self._channels: Mapping[Channel, Notifier] = channels or {
            "log": LogNotifier(),
            "request_webhook": WebhookNotifier(settings, request_webhook_url),
            "operator_webhook": WebhookNotifier(settings, operator_webhook_url),
            "email": EmailNotifier(settings),
        }

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
    def notify_channel(self, notice: ChannelNotice) -> None:
        """Tell the owner through one channel (a no-op where that channel is not configured)."""
        self._channels[notice.channel].send(notice.outcome, self.payload(notice.outcome))

    @activity.defn
    def notify(self, outcome: Outcome) -> None:
        """Every channel in one activity: what exports started before `notify_channel` existed
        still schedule (their history replays it); new exports never do."""
        payload = self.payload(outcome)
        for notifier in self._channels.values():
            notifier.send(outcome, payload)

    def all(self) -> list[Any]:
        return [self.notify_channel, self.notify]
