"""Email over SMTP, with STARTTLS (default, port 587) or implicit TLS (``tls = true``, 465).

``build_message`` is pure: the same delivery gives the same message, down to a
``Message-ID`` derived from the outbox key, so a mail system that deduplicates by
Message-ID drops a retried copy. SMTP replies 4xx are temporary and retried;
5xx (a refused recipient, bad credentials) are not.
"""

from __future__ import annotations

import asyncio
import email.utils
import hashlib
import smtplib
import ssl
from email.message import EmailMessage

import httpx

from controltower.clock import system_clock
from controltower.notify import render
from controltower.notify.channels.base import Channel, Delivery, DeliveryFailed
from controltower.spec.alerts import SmtpChannelSpec
from controltower.typing import Clock

MESSAGE_ID_DOMAIN = "controltower.invalid"


class SmtpChannel(Channel[SmtpChannelSpec]):
    type = "smtp"

    def __init__(
        self,
        name: str,
        spec: SmtpChannelSpec,
        *,
        clock: Clock = system_clock,
        tls_context: ssl.SSLContext | None = None,
    ) -> None:
        super().__init__(name, spec, clock=clock)
        self.tls_context = tls_context

    def build_message(self, delivery: Delivery) -> EmailMessage:
        note = delivery.notification
        message = EmailMessage()
        message["Subject"] = render.subject(note, self.spec.subject_prefix)
        message["From"] = self.spec.sender
        message["To"] = ", ".join(self.spec.to)
        message["Date"] = email.utils.format_datetime(delivery.created_at)
        digest = hashlib.sha256(delivery.key.encode()).hexdigest()[:32]
        message["Message-ID"] = f"<{digest}@{MESSAGE_ID_DOMAIN}>"
        message["X-Tower-Key"] = delivery.idempotency_key
        message["X-Tower-Event"] = note.kind
        message.set_content(render.email_text(delivery))
        message.add_alternative(render.email_html(delivery), subtype="html")
        return message

    async def deliver(self, delivery: Delivery, http: httpx.AsyncClient) -> str:
        message = self.build_message(delivery)
        return await asyncio.to_thread(self._send, message)

    def _send(self, message: EmailMessage) -> str:
        spec = self.spec
        context = self.tls_context or ssl.create_default_context()
        try:
            if spec.tls:
                client: smtplib.SMTP = smtplib.SMTP_SSL(
                    spec.host, spec.port, timeout=spec.timeout, context=context
                )
            else:
                client = smtplib.SMTP(spec.host, spec.port, timeout=spec.timeout)
            with client:
                if spec.starttls and not spec.tls:
                    client.starttls(context=context)
                if spec.username:
                    password = spec.password.get_secret_value() if spec.password else ""
                    client.login(spec.username, password)
                refused = client.send_message(message)
        except smtplib.SMTPNotSupportedError:
            raise DeliveryFailed(
                f"{spec.host}:{spec.port} does not offer STARTTLS; "
                "set starttls = false only for a relay on a trusted network",
                retryable=False,
            ) from None
        except smtplib.SMTPRecipientsRefused as exc:
            codes = [code for code, _ in exc.recipients.values()]
            raise DeliveryFailed(
                self.scrub(f"every recipient was refused: {_replies(exc.recipients)}"),
                retryable=all(400 <= code < 500 for code in codes),
            ) from None
        except smtplib.SMTPResponseException as exc:
            text = (
                exc.smtp_error.decode(errors="replace")
                if isinstance(exc.smtp_error, bytes)
                else str(exc.smtp_error)
            )
            raise DeliveryFailed(
                self.scrub(f"SMTP {exc.smtp_code}: {text}"),
                retryable=400 <= exc.smtp_code < 500,
            ) from None
        except (smtplib.SMTPException, OSError) as exc:
            raise DeliveryFailed(
                self.scrub(f"{spec.host}:{spec.port}: {type(exc).__name__}: {exc}"),
                retryable=True,
            ) from None
        if refused:
            return f"accepted for {len(spec.to) - len(refused)} of {len(spec.to)} (refused: {_replies(refused)})"
        return f"accepted by {spec.host}"


def _replies(refused: dict[str, tuple[int, bytes]]) -> str:
    return ", ".join(
        f"{address} ({code} {reply.decode(errors='replace')})"
        for address, (code, reply) in refused.items()
    )
