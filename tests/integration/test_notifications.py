"""Notifications end to end: e-mail through a real SMTP server (aiosmtpd), signed webhooks to a
local HTTP receiver, retried until delivered."""

from __future__ import annotations

import contextlib
import email
import email.policy
import hashlib
import hmac
import json
import re
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.message import EmailMessage
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session
from temporalio.client import WorkflowFailureError

from activities.email_notifier import EmailNotifier
from connections.temporal import connect
from domain.activity_io import Outcome
from domain.models import ExportRequest, ExportStatus, Notify
from domain.settings import Settings
from tests.integration import export_harness as h
from workflows.export_workflow import ExportWorkflow

pytestmark = pytest.mark.services

WAIT_SECONDS = 30.0
USERNAME, PASSWORD = "exports", "s3cret"


# -- a real SMTP server -----------------------------------------------------------------------


@dataclass
class Mailbox:
    """What the SMTP server received: envelopes, and the logins it accepted."""

    port: int
    envelopes: list[Envelope] = field(default_factory=list)
    logins: list[tuple[bytes, bytes]] = field(default_factory=list)
    _arrived: threading.Condition = field(default_factory=threading.Condition)

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:  # noqa: N802 (aiosmtpd's hook name)
        with self._arrived:
            self.envelopes.append(envelope)
            self._arrived.notify_all()
        return "250 OK"

    def authenticate(
        self, server: SMTP, session: Session, envelope: Envelope, mechanism: str, auth: Any
    ) -> AuthResult:
        ok = isinstance(auth, LoginPassword) and (auth.login, auth.password) == (
            USERNAME.encode(),
            PASSWORD.encode(),
        )
        if ok:
            self.logins.append((auth.login, auth.password))
        return AuthResult(success=ok)

    def wait_for(self, count: int) -> list[EmailMessage]:
        with self._arrived:
            if not self._arrived.wait_for(lambda: len(self.envelopes) >= count, WAIT_SECONDS):
                raise TimeoutError(f"{len(self.envelopes)} of {count} e-mails arrived")
        return [_parse(envelope) for envelope in self.envelopes]


def _parse(envelope: Envelope) -> EmailMessage:
    content = envelope.original_content or b""
    message = email.message_from_bytes(content, policy=email.policy.default)
    assert isinstance(message, EmailMessage)
    return message


def _body(message: EmailMessage) -> str:
    part = message.get_body(preferencelist=("plain",))
    assert isinstance(part, EmailMessage)
    text: str = part.get_content()
    return text.replace("\r\n", "\n")  # as it went over the wire


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.fixture
def mailbox() -> Iterator[Mailbox]:
    box = Mailbox(port=_free_port())
    controller = Controller(
        box,
        hostname="127.0.0.1",
        port=box.port,
        authenticator=box.authenticate,
        auth_require_tls=False,  # loopback only: lets the test log in without a certificate
    )
    controller.start()
    try:
        yield box
    finally:
        controller.stop()


# -- a local webhook receiver -----------------------------------------------------------------


@dataclass
class Delivery:
    headers: dict[str, str]
    body: bytes
    answered: int


@dataclass
class Receiver:
    """An HTTP server that answers POSTs with the scripted statuses (then 200) and records them."""

    url: str
    script: list[int]
    deliveries: list[Delivery] = field(default_factory=list)

    @property
    def host_port(self) -> str:
        """What WEBHOOK_ALLOWED_HOSTS must list for the worker to call this loopback receiver."""
        return self.url.split("/")[2]

    def wait_for_success(self) -> list[Delivery]:
        deadline = time.monotonic() + WAIT_SECONDS
        while not any(d.answered == 200 for d in self.deliveries):
            if time.monotonic() > deadline:
                raise TimeoutError(f"no delivery succeeded: {self.deliveries}")
            time.sleep(0.05)
        return self.deliveries


@contextlib.contextmanager
def webhook_receiver(*script: int) -> Iterator[Receiver]:
    receiver = Receiver(url="", script=list(script))

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            status = receiver.script.pop(0) if receiver.script else 200
            receiver.deliveries.append(Delivery(dict(self.headers.items()), body, status))
            self.send_response(status)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    receiver.url = f"http://127.0.0.1:{server.server_address[1]}/hooks/exports"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield receiver
    finally:
        server.shutdown()
        server.server_close()


# -- running exports --------------------------------------------------------------------------


@pytest.fixture
def collection(settings: Settings, unique_name: str) -> Iterator[str]:
    h.seed(settings, unique_name, ({"n": n, "name": f"row {n}"} for n in range(3)))
    yield unique_name
    h.drop(settings, unique_name)


def _settings(settings: Settings, **update: Any) -> Settings:
    """The stack's settings with a task queue of the test's own and `update` applied."""
    return settings.model_copy(
        update={"temporal_task_queue": f"notify-{uuid.uuid4().hex[:8]}", **update}
    )


async def _run(settings: Settings, request: ExportRequest) -> tuple[str, Any]:
    """Run an export to its end; (its id, its final progress). The notification is sent before
    the workflow ends."""
    export = h.new_export(request)
    async with h.in_process_worker(settings) as client:
        handle = await h.start(client, settings, export)
        progress = await handle.result()
    return export.export_id, progress


async def _download(url: str) -> bytes:
    async with httpx.AsyncClient() as http:
        response = await http.get(url)
    assert response.status_code == 200, response.text
    return response.content


def _expected_signature(secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


# -- e-mail -----------------------------------------------------------------------------------


async def test_a_completed_export_is_emailed_with_a_working_link(
    settings: Settings, collection: str, mailbox: Mailbox
) -> None:
    run_settings = _settings(settings, smtp_host="127.0.0.1", smtp_port=mailbox.port)
    request = ExportRequest(
        collection=collection,
        filename="rows.csv",
        notify=Notify(email="owner@example.com"),
    )

    export_id, progress = await _run(run_settings, request)

    assert progress.status == ExportStatus.COMPLETED
    [message] = mailbox.wait_for(1)
    [envelope] = mailbox.envelopes
    assert envelope.mail_from == run_settings.smtp_from
    assert envelope.rcpt_tos == ["owner@example.com"]
    assert message["Subject"] == f"Export {export_id} completed"
    assert message["To"] == "owner@example.com"
    assert message["Message-ID"] == f"<{export_id}.completed@localhost>"
    assert mailbox.logins == []  # no credentials configured: no login
    body = _body(message)
    assert "Rows:  3\n" in body
    assert f"Size:  {progress.bytes} bytes\n" in body
    assert "File:  rows.csv\n" in body
    assert f"{run_settings.api_public_url}/exports/{export_id}/download" in body
    link = re.search(r"Download \(link valid until (\S+)\):\n(\S+)\n", body)
    assert link is not None, body
    assert datetime.fromisoformat(link.group(1)) > datetime.now(UTC)
    assert await _download(link.group(2)) == h.fetch_object(run_settings, progress.object_key)


async def test_a_cancelled_export_is_emailed_to_the_default_recipient(
    settings: Settings, collection: str, mailbox: Mailbox
) -> None:
    """No `notify` in the request: NOTIFY_EMAIL receives it, with the reason."""
    run_settings = _settings(
        settings, smtp_host="127.0.0.1", smtp_port=mailbox.port, notify_email="ops@example.com"
    )
    export = h.new_export(ExportRequest(collection=collection))
    client = await connect(run_settings)
    handle = await h.start(client, run_settings, export)
    await handle.cancel()  # before any worker runs it: it cannot complete first
    async with h.in_process_worker(run_settings, client):
        with contextlib.suppress(WorkflowFailureError):
            await handle.result()
        progress = await handle.query(ExportWorkflow.progress)

    assert progress.status == ExportStatus.CANCELLED
    [message] = mailbox.wait_for(1)
    assert mailbox.envelopes[0].rcpt_tos == ["ops@example.com"]
    assert message["Subject"] == f"Export {export.export_id} cancelled"
    body = _body(message)
    assert f"Error: {progress.error}\n" in body
    assert "Download" not in body


def _outcome(status: ExportStatus, notify: Notify | None, error: str | None = None) -> Outcome:
    return Outcome(
        export=h.new_export(ExportRequest(collection="orders", notify=notify)),
        status=status,
        object_key=None,
        filename=None,
        rows=1536,
        bytes=2_500_000,
        error=error,
    )


def test_smtp_login_and_a_failure_message(settings: Settings, mailbox: Mailbox) -> None:
    notifier = EmailNotifier(
        settings.model_copy(
            update={
                "smtp_host": "127.0.0.1",
                "smtp_port": mailbox.port,
                "smtp_username": USERNAME,
                "smtp_password": PASSWORD,
                "smtp_from": "Exports <exports@example.org>",
            }
        )
    )
    outcome = _outcome(ExportStatus.FAILED, Notify(email="a@example.com"), "maxTimeMS exceeded")

    notifier.send(outcome, {"api_download_url": "unused for a failure"})

    [message] = mailbox.wait_for(1)
    assert mailbox.logins == [(USERNAME.encode(), PASSWORD.encode())]
    assert message["From"] == "Exports <exports@example.org>"
    assert message["Subject"] == f"Export {outcome.export.export_id} failed"
    assert message["Message-ID"] == f"<{outcome.export.export_id}.failed@example.org>"
    body = _body(message)
    assert "Rows:  1,536\n" in body
    assert "Size:  2.4 MiB (2,500,000 bytes)\n" in body
    assert "Error: maxTimeMS exceeded\n" in body


def test_no_email_without_a_recipient_or_without_smtp(settings: Settings, mailbox: Mailbox) -> None:
    with_smtp = settings.model_copy(update={"smtp_host": "127.0.0.1", "smtp_port": mailbox.port})
    without_smtp = with_smtp.model_copy(update={"smtp_host": None})
    payload = {"api_download_url": "http://api/exports/x/download"}

    EmailNotifier(with_smtp).send(_outcome(ExportStatus.COMPLETED, None), payload)
    EmailNotifier(without_smtp).send(
        _outcome(ExportStatus.COMPLETED, Notify(email="a@example.com")), payload
    )

    assert mailbox.envelopes == []
    assert Settings(smtp_host="", notify_email="").smtp_host is None  # empty variables: unset


# -- webhooks ---------------------------------------------------------------------------------


async def test_the_webhook_gets_a_signed_payload(settings: Settings, collection: str) -> None:
    with webhook_receiver() as receiver:
        run_settings = _settings(settings, webhook_allowed_hosts=receiver.host_port)
        request = ExportRequest(collection=collection, notify=Notify(webhook_url=receiver.url))
        export_id, progress = await _run(run_settings, request)
        [delivery] = receiver.wait_for_success()

    assert delivery.headers["Content-Type"] == "application/json"
    assert delivery.headers["X-Export-Signature"] == _expected_signature(
        run_settings.webhook_signing_secret, delivery.body
    )
    payload = json.loads(delivery.body)
    assert set(payload) == {
        "export_id",
        "status",
        "rows",
        "bytes",
        "error",
        "download_url",
        "download_url_expires_at",
        "api_download_url",
    }
    assert payload["export_id"] == export_id
    assert payload["status"] == "COMPLETED"
    assert (payload["rows"], payload["bytes"]) == (3, progress.bytes)
    assert payload["error"] is None
    assert payload["api_download_url"] == (
        f"{run_settings.api_public_url}/exports/{export_id}/download"
    )
    assert datetime.fromisoformat(payload["download_url_expires_at"]) > datetime.now(UTC)
    assert await _download(payload["download_url"]) == h.fetch_object(
        run_settings, progress.object_key
    )


async def test_a_failing_webhook_is_retried_until_delivered(
    settings: Settings, collection: str
) -> None:
    with webhook_receiver(500, 500) as receiver:
        run_settings = _settings(settings, webhook_allowed_hosts=receiver.host_port)
        request = ExportRequest(collection=collection, notify=Notify(webhook_url=receiver.url))
        export_id, progress = await _run(run_settings, request)
        deliveries = receiver.wait_for_success()

    assert progress.status == ExportStatus.COMPLETED
    assert [d.answered for d in deliveries] == [500, 500, 200]
    for delivery in deliveries:
        assert delivery.headers["X-Export-Signature"] == _expected_signature(
            run_settings.webhook_signing_secret, delivery.body
        )
        assert json.loads(delivery.body)["export_id"] == export_id
