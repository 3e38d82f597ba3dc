"""E-mail notifications over SMTP (stdlib `smtplib`): one plain-text message when an export ends.

The recipient is the request's `notify.email`, else `NOTIFY_EMAIL`; with no `SMTP_HOST` nothing is
sent. An SMTP error raises, so the notify activity's retry policy tries again. The Message-ID is
derived from the export and its outcome, so a message re-sent by a retried activity can be
recognised as the same one by mail clients.
"""

from __future__ import annotations

import logging
import smtplib
import ssl
from email.message import EmailMessage
from email.utils import formatdate, parseaddr
from typing import Any

from domain.activity_io import Outcome
from domain.models import ExportStatus
from domain.settings import Settings

logger = logging.getLogger(__name__)
SMTP_TIMEOUT_SECONDS = 30.0
_UNITS = ("KiB", "MiB", "GiB", "TiB")


def _size(num_bytes: int) -> str:
    """`1.5 MiB (1,572,864 bytes)`: readable, and exact for whoever compares sizes."""
    exponent = min((max(num_bytes, 1).bit_length() - 1) // 10, len(_UNITS))
    if exponent == 0:
        return f"{num_bytes} bytes"
    return f"{num_bytes / 1024**exponent:.1f} {_UNITS[exponent - 1]} ({num_bytes:,} bytes)"


def message_text(outcome: Outcome, payload: dict[str, Any]) -> str:
    """The body: what was exported and where to get it, or why it did not complete."""
    export_id = outcome.export.export_id
    lines = [
        f"Export {export_id} of collection {outcome.export.request.collection!r} "
        f"{outcome.status.value.lower()}.",
        "",
        f"Rows:  {outcome.rows:,}",
        f"Size:  {_size(outcome.bytes)}",
    ]
    if outcome.filename:
        lines.append(f"File:  {outcome.filename}")
    lines.append("")
    if outcome.status == ExportStatus.COMPLETED:
        if payload.get("download_url"):
            lines += [
                f"Download (link valid until {payload['download_url_expires_at']}):",
                str(payload["download_url"]),
                "",
            ]
        lines += [
            "A fresh link at any time (sign in to the API):",
            str(payload["api_download_url"]),
        ]
    else:
        lines.append(f"Error: {outcome.error or 'no reason was given'}")
    return "\n".join(lines) + "\n"


class EmailNotifier:
    """Sends the outcome of an export to its e-mail recipient through SMTP."""

    def __init__(self, settings: Settings, timeout: float = SMTP_TIMEOUT_SECONDS) -> None:
        self._settings = settings
        self._timeout = timeout

    def recipient(self, outcome: Outcome) -> str | None:
        notify = outcome.export.request.notify
        return (notify.email if notify else None) or self._settings.notify_email

    def message(self, outcome: Outcome, payload: dict[str, Any], to: str) -> EmailMessage:
        export_id = outcome.export.export_id
        status = outcome.status.value.lower()
        domain = parseaddr(self._settings.smtp_from)[1].rpartition("@")[2] or "localhost"
        msg = EmailMessage()
        msg["Subject"] = f"Export {export_id} {status}"
        msg["From"] = self._settings.smtp_from
        msg["To"] = to
        msg["Date"] = formatdate(localtime=False, usegmt=True)
        msg["Message-ID"] = f"<{export_id}.{status}@{domain}>"
        msg.set_content(message_text(outcome, payload))
        return msg

    def send(self, outcome: Outcome, payload: dict[str, Any]) -> None:
        to = self.recipient(outcome)
        if to is None:
            return
        host = self._settings.smtp_host
        if host is None:
            logger.warning(
                "export %s: not e-mailing %s because SMTP_HOST is not set",
                outcome.export.export_id,
                to,
            )
            return
        msg = self.message(outcome, payload, to)
        with smtplib.SMTP(host, self._settings.smtp_port, timeout=self._timeout) as smtp:
            if self._settings.smtp_starttls:
                smtp.starttls(context=ssl.create_default_context())
            if self._settings.smtp_username:
                smtp.login(self._settings.smtp_username, self._settings.smtp_password or "")
            smtp.send_message(msg)
        logger.info("export %s: e-mailed %s", outcome.export.export_id, to)
