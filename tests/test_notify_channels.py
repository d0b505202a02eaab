"""Each channel against a real local server that implements the receiver's documented contract."""

from __future__ import annotations

import asyncio
import json
import ssl
from collections.abc import Iterator
from datetime import UTC, datetime
from email import message_from_bytes
from email.message import Message
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP as SMTPServer
from aiosmtpd.smtp import Envelope, Session

from controltower.notify.channels import (
    AppriseChannel,
    Channel,
    Delivery,
    DeliveryFailed,
    ResendChannel,
    SlackChannel,
    SmtpChannel,
    WebhookChannel,
)
from controltower.notify.message import Notification
from controltower.spec.alerts import ChannelSpec, parse_channel
from tests.conftest import self_signed_certificate
from tests.fakes.receiver import WebhookReceiver
from tests.fakes.resend import FakeResend
from tests.fakes.server import free_port
from tests.fakes.slack import FakeSlack

NOTE = Notification(
    key="deploy:r7:failed",
    kind="deploy.failed",
    title="deploy r7 failed",
    text="smoke check /api/health: status == 200 (got 500)",
    severity="critical",
    service="shop",
    environment="production",
    fields={"release": "r7"},
)
DELIVERY = Delivery("deploy:r7:failed:ops", "ops", NOTE, datetime(2026, 3, 1, tzinfo=UTC))


def spec(**values: Any) -> ChannelSpec:
    return parse_channel(values)


def deliver(channel: Channel, delivery: Delivery = DELIVERY) -> str:
    async def go() -> str:
        async with httpx.AsyncClient() as http:
            return await channel.deliver(delivery, http)

    return asyncio.run(go())


@pytest.fixture
def slack() -> Iterator[FakeSlack]:
    with FakeSlack().running_for() as server:
        assert isinstance(server, FakeSlack)
        yield server


@pytest.fixture
def resend() -> Iterator[FakeResend]:
    with FakeResend().running_for() as server:
        assert isinstance(server, FakeResend)
        yield server


class TestSlack:
    def test_delivers_blocks(self, slack: FakeSlack) -> None:
        """Slack receives one message with fallback text, blocks and a coloured attachment."""
        receipt = deliver(SlackChannel("ops", spec(type="slack", url=slack.webhook_url)))
        assert receipt == "HTTP 200"
        [message] = slack.messages
        assert message["text"] == "[CRITICAL] deploy r7 failed (shop/production)"
        assert message["attachments"][0]["color"] == "#E01E5A"

    def test_unknown_webhook_is_not_retried(self, slack: FakeSlack) -> None:
        """A 404 no_service (revoked webhook) is permanent and says what Slack said."""
        channel = SlackChannel("ops", spec(type="slack", url=slack.url + "/services/T/B/revoked"))
        with pytest.raises(DeliveryFailed) as failed:
            deliver(channel)
        assert not failed.value.retryable
        assert str(failed.value) == "HTTP 404: no_service"

    def test_rate_limited_says_when(self, slack: FakeSlack) -> None:
        """A 429 is retryable and carries Slack's Retry-After."""
        slack.rate_limit = True
        slack.retry_after = 3
        channel = SlackChannel("ops", spec(type="slack", url=slack.webhook_url))
        deliver(channel)
        with pytest.raises(DeliveryFailed) as failed:
            deliver(channel)
        assert failed.value.retryable
        assert failed.value.retry_after == 3.0

    def test_receiver_down_is_retryable_and_scrubbed(self) -> None:
        """Connection refused is worth retrying; the error does not quote the webhook token."""
        url = f"http://127.0.0.1:{free_port()}/services/T/B/tokentokentoken"
        with pytest.raises(DeliveryFailed) as failed:
            deliver(SlackChannel("ops", spec(type="slack", url=url)))
        assert failed.value.retryable
        assert "tokentokentoken" not in str(failed.value)


class TestResend:
    def channel(self, server: FakeResend, **overrides: Any) -> ResendChannel:
        values = {
            "type": "resend",
            "api_key": server.api_key,
            "api_url": server.url,
            "to": ["ops@example.com"],
            "from": "Tower <tower@example.com>",
            **overrides,
        }
        return ResendChannel("mail", spec(**values))

    def test_sends_email(self, resend: FakeResend) -> None:
        """The fake accepts the documented request; the receipt is Resend's email id."""
        receipt = deliver(self.channel(resend))
        [email] = resend.emails
        assert receipt == f"resend id {email['id']}"
        assert email["subject"] == "[tower] [CRITICAL] deploy r7 failed (shop/production)"
        assert email["to"] == ["ops@example.com"]
        assert "smoke check /api/health" in email["text"]
        assert email["idempotency_key"] == "deploy:r7:failed:ops"

    def test_retry_with_same_key_sends_once(self, resend: FakeResend) -> None:
        """Delivering the same outbox row twice makes one email: Resend deduplicates by key."""
        channel = self.channel(resend)
        first = deliver(channel)
        second = deliver(channel, Delivery(DELIVERY.key, "ops", NOTE, DELIVERY.created_at, 2))
        assert first == second
        assert len(resend.emails) == 1

    def test_wrong_key_is_permanent(self, resend: FakeResend) -> None:
        """403 invalid_api_key is not retried and the key is not in the message."""
        with pytest.raises(DeliveryFailed) as failed:
            deliver(self.channel(resend, api_key="re_wrong_key_999"))
        assert not failed.value.retryable
        assert str(failed.value) == "HTTP 403: invalid_api_key: API key is invalid."

    def test_invalid_address_is_permanent(self, resend: FakeResend) -> None:
        with pytest.raises(DeliveryFailed) as failed:
            deliver(self.channel(resend, to=["not-an-address"]))
        assert not failed.value.retryable
        assert "validation_error" in str(failed.value)

    def test_rate_limit_and_server_error_are_retryable(self, resend: FakeResend) -> None:
        """429 rate_limit_exceeded (with retry-after) and 500 application_error can pass later."""
        resend.fail_next = [resend.rate_limited(2), resend.server_error()]
        channel = self.channel(resend)
        with pytest.raises(DeliveryFailed) as limited:
            deliver(channel)
        assert (limited.value.retryable, limited.value.retry_after) == (True, 2.0)
        with pytest.raises(DeliveryFailed) as broken:
            deliver(channel)
        assert broken.value.retryable
        assert "application_error" in str(broken.value)
        deliver(channel)
        assert len(resend.emails) == 1


class TestWebhook:
    def test_signed_delivery_verifies(self) -> None:
        """A receiver holding the secret verifies the signature and reads the documented body."""
        with WebhookReceiver(secret="whsec_abc").running_for() as receiver:
            assert isinstance(receiver, WebhookReceiver)
            channel = WebhookChannel(
                "hook", spec(type="webhook", url=receiver.url + "/hook", secret="whsec_abc")
            )
            deliver(channel)
        assert receiver.rejected == []
        body = receiver.processed["deploy:r7:failed:ops"]
        assert body["kind"] == "deploy.failed"
        assert body["fields"] == {"release": "r7"}

    def test_wrong_secret_is_rejected(self) -> None:
        """A signature made with another secret fails verification (401, not retried)."""
        with WebhookReceiver(secret="right").running_for() as receiver:
            assert isinstance(receiver, WebhookReceiver)
            channel = WebhookChannel(
                "hook", spec(type="webhook", url=receiver.url + "/hook", secret="wrong")
            )
            with pytest.raises(DeliveryFailed) as failed:
                deliver(channel)
        assert not failed.value.retryable
        assert len(receiver.rejected) == 1
        assert receiver.processed == {}

    def test_server_error_is_retryable(self) -> None:
        with WebhookReceiver().running_for() as receiver:
            assert isinstance(receiver, WebhookReceiver)
            receiver.status = 503
            with pytest.raises(DeliveryFailed) as failed:
                deliver(WebhookChannel("hook", spec(type="webhook", url=receiver.url)))
        assert failed.value.retryable


class Inbox:
    def __init__(self) -> None:
        self.messages: list[tuple[str, list[str], Message]] = []
        self.refuse: tuple[int, str] | None = None

    async def handle_RCPT(
        self,
        server: SMTPServer,
        session: Session,
        envelope: Envelope,
        address: str,
        options: list[str],
    ) -> str:
        if self.refuse:
            code, text = self.refuse
            return f"{code} {text}"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTPServer, session: Session, envelope: Envelope) -> str:
        content = envelope.original_content or b""
        self.messages.append(
            (str(envelope.mail_from), list(envelope.rcpt_tos), message_from_bytes(content))
        )
        return "250 Message accepted for delivery"


class TestSmtp:
    def smtp_spec(self, port: int, **overrides: Any) -> ChannelSpec:
        values = {
            "type": "smtp",
            "host": "127.0.0.1",
            "port": port,
            "starttls": False,
            "to": ["ops@example.com", "oncall@example.com"],
            "from": "tower@example.com",
            **overrides,
        }
        return spec(**values)

    def test_plain_relay(self) -> None:
        """A local relay receives one multipart message for every recipient."""
        inbox = Inbox()
        controller = Controller(inbox, hostname="127.0.0.1", port=free_port())
        controller.start()
        try:
            receipt = deliver(SmtpChannel("mail", self.smtp_spec(controller.port)))
        finally:
            controller.stop()
        assert receipt == "accepted by 127.0.0.1"
        [(sender, recipients, message)] = inbox.messages
        assert sender == "tower@example.com"
        assert recipients == ["ops@example.com", "oncall@example.com"]
        assert message["Subject"] == "[tower] [CRITICAL] deploy r7 failed (shop/production)"
        assert message["X-Tower-Key"] == "deploy:r7:failed:ops"
        assert message.is_multipart()

    def test_starttls_with_login(self, tmp_path: Path) -> None:
        """STARTTLS upgrades the connection before AUTH; the server only allows auth over TLS."""
        cert, key = self_signed_certificate(tmp_path, days=1)
        server_tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        server_tls.load_cert_chain(cert, key)
        logins: list[tuple[bytes, bytes]] = []

        def authenticate(
            server: Any, session: Any, envelope: Any, mechanism: str, auth: Any
        ) -> Any:
            from aiosmtpd.smtp import AuthResult

            logins.append((auth.login, auth.password))
            return AuthResult(success=auth.password == b"hunter22", handled=False)

        inbox = Inbox()
        controller = Controller(
            inbox,
            hostname="127.0.0.1",
            port=free_port(),
            tls_context=server_tls,
            require_starttls=True,
            authenticator=authenticate,
            auth_require_tls=True,
            auth_exclude_mechanism=["LOGIN"],
        )
        controller.start()
        try:
            client_tls = ssl.create_default_context(cafile=str(cert))
            channel = SmtpChannel(
                "mail",
                self.smtp_spec(
                    controller.port, starttls=True, username="tower", password="hunter22"
                ),
                tls_context=client_tls,
            )
            deliver(channel)
            wrong = SmtpChannel(
                "mail",
                self.smtp_spec(controller.port, starttls=True, username="tower", password="nope"),
                tls_context=client_tls,
            )
            with pytest.raises(DeliveryFailed) as failed:
                deliver(wrong)
        finally:
            controller.stop()
        assert len(inbox.messages) == 1
        assert logins[0] == (b"tower", b"hunter22")
        assert not failed.value.retryable
        assert "nope" not in str(failed.value)
        assert str(failed.value).startswith("SMTP 535")

    def test_refused_recipients(self) -> None:
        """550 for every recipient is permanent; 451 is temporary."""
        inbox = Inbox()
        controller = Controller(inbox, hostname="127.0.0.1", port=free_port())
        controller.start()
        try:
            inbox.refuse = (550, "5.1.1 no such user")
            with pytest.raises(DeliveryFailed) as permanent:
                deliver(SmtpChannel("mail", self.smtp_spec(controller.port)))
            inbox.refuse = (451, "4.3.0 try later")
            with pytest.raises(DeliveryFailed) as temporary:
                deliver(SmtpChannel("mail", self.smtp_spec(controller.port)))
        finally:
            controller.stop()
        assert not permanent.value.retryable
        assert "550" in str(permanent.value)
        assert temporary.value.retryable

    def test_no_server_is_retryable(self) -> None:
        with pytest.raises(DeliveryFailed) as failed:
            deliver(SmtpChannel("mail", self.smtp_spec(free_port(), timeout=2)))
        assert failed.value.retryable

    def test_starttls_required_but_not_offered(self) -> None:
        """A server without STARTTLS is refused unless the spec turns STARTTLS off."""
        controller = Controller(Inbox(), hostname="127.0.0.1", port=free_port())
        controller.start()
        try:
            with pytest.raises(DeliveryFailed) as failed:
                deliver(SmtpChannel("mail", self.smtp_spec(controller.port, starttls=True)))
        finally:
            controller.stop()
        assert not failed.value.retryable
        assert "does not offer STARTTLS" in str(failed.value)


class TestApprise:
    def test_json_target(self) -> None:
        """An Apprise json:// URL posts the rendered notification to the receiver."""
        with WebhookReceiver().running_for() as receiver:
            assert isinstance(receiver, WebhookReceiver)
            url = f"json://127.0.0.1:{receiver.port}/notify"
            assert deliver(AppriseChannel("any", spec(type="apprise", url=url))) == (
                "sent through Apprise"
            )
        [request] = receiver.requests
        body = json.loads(request.body)
        assert request.path == "/notify"
        assert body["title"] == "[CRITICAL] deploy r7 failed (shop/production)"
        assert "smoke check /api/health" in body["message"]
        assert body["type"] == "failure"

    def test_failure_is_retryable_and_scrubbed(self) -> None:
        """A failed Apprise send is retried later; the error hides the URL's credentials."""
        url = f"json://user:pa55word@127.0.0.1:{free_port()}/notify"
        with pytest.raises(DeliveryFailed) as failed:
            deliver(AppriseChannel("any", spec(type="apprise", url=url)))
        assert failed.value.retryable
        assert "pa55word" not in str(failed.value)

    def test_unknown_scheme_is_permanent(self) -> None:
        with pytest.raises(DeliveryFailed) as failed:
            deliver(AppriseChannel("any", spec(type="apprise", url="nosuchservice://x")))
        assert not failed.value.retryable
