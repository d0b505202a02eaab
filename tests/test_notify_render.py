"""Pure parts of notification delivery: request builders, renderings, scrubbing, backoff."""

from __future__ import annotations

import hashlib
import hmac
import json
from datetime import UTC, datetime

import pytest

from controltower.exceptions import NotifyError, SpecError
from controltower.notify import render
from controltower.notify.channels import (
    HttpRequest,
    ResendChannel,
    SlackChannel,
    SmtpChannel,
    WebhookChannel,
    build_channels,
)
from controltower.notify.channels.base import Delivery, retry_after
from controltower.notify.channels.webhook import sign, verify
from controltower.notify.dispatch import RetryPolicy
from controltower.notify.message import Notification
from controltower.notify.scrub import scrub
from controltower.spec import parse_spec
from controltower.spec.alerts import ChannelSpec, parse_channel

CREATED = datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC)
NOTE = Notification(
    key="incident:42:firing",
    kind="incident.firing",
    title="api is down",
    text="3 of 3 checks failed: status == 200 (got 502)",
    severity="critical",
    service="shop",
    environment="production",
    url="https://tower.example.com/incidents/42",
    fields={"monitor": "health", "since": "12:00 UTC"},
    labels={"team": "web"},
)
DELIVERY = Delivery(
    key="incident:42:firing:ops", channel="ops", notification=NOTE, created_at=CREATED
)
SLACK_URL = "https://hooks.slack.com/services/T0/B0/secrettoken123"


def channel_spec(**values: object) -> ChannelSpec:
    return parse_channel(values)


class TestSlackRequest:
    def test_request_is_json_post_to_the_webhook(self) -> None:
        """The builder returns the POST to the webhook URL with the rendered message as JSON."""
        channel = SlackChannel("ops", channel_spec(type="slack", url=SLACK_URL))
        request = channel.build_request(DELIVERY, now=1_700_000_000)
        assert request == HttpRequest(
            "POST",
            SLACK_URL,
            (("Content-Type", "application/json"), ("User-Agent", "controltower-notify")),
            render.dumps(render.slack_message(DELIVERY)),
        )

    def test_message_has_fallback_blocks_and_colour(self) -> None:
        """A critical incident is red, has a header, the text, the fields and a link."""
        message = render.slack_message(DELIVERY)
        assert message["text"] == "[CRITICAL] api is down (shop/production)"
        assert message["blocks"][0] == {
            "type": "header",
            "text": {"type": "plain_text", "text": "api is down"},
        }
        assert message["blocks"][1]["text"]["text"] == NOTE.text
        attachment = message["attachments"][0]
        assert attachment["color"] == "#E01E5A"
        assert attachment["blocks"][0]["fields"] == [
            {"type": "mrkdwn", "text": "*monitor*\nhealth"},
            {"type": "mrkdwn", "text": "*since*\n12:00 UTC"},
        ]
        context = attachment["blocks"][1]["elements"][0]["text"]
        assert "<https://tower.example.com/incidents/42|open>" in context

    @pytest.mark.parametrize(
        ("kind", "severity", "colour"),
        [
            ("incident.resolved", "critical", "#2EB67D"),
            ("deploy.succeeded", "info", "#2EB67D"),
            ("incident.firing", "warning", "#ECB22E"),
            ("deploy.started", "info", "#36C5F0"),
            ("error.new", "unheard-of", "#36C5F0"),
        ],
    )
    def test_colour_by_severity(self, kind: str, severity: str, colour: str) -> None:
        """Good news is green; otherwise red, amber or blue by severity."""
        assert (
            render.colour(Notification(key="k", kind=kind, title="t", severity=severity)) == colour
        )

    def test_mrkdwn_is_escaped(self) -> None:
        """Text with <, > and & cannot inject Slack links or mentions."""
        note = Notification(key="k", kind="error.new", title="t", text="<!channel> a & b")
        message = render.slack_message(Delivery("k:s", "s", note, CREATED))
        assert message["blocks"][1]["text"]["text"] == "&lt;!channel&gt; a &amp; b"

    def test_long_title_is_cut_to_slack_limit(self) -> None:
        note = Notification(key="k", kind="error.new", title="x" * 400)
        header = render.slack_message(Delivery("k:s", "s", note, CREATED))["blocks"][0]
        assert len(header["text"]["text"]) == 150


class TestWebhookRequest:
    def test_signed_request(self) -> None:
        """The body is the documented JSON; the signature is HMAC-SHA256 of "timestamp.body"."""
        channel = WebhookChannel(
            "hook", channel_spec(type="webhook", url="https://example.com/hook", secret="s3cret")
        )
        request = channel.build_request(DELIVERY, now=1_700_000_000.7)
        body = render.dumps(render.webhook_body(DELIVERY))
        expected = hmac.new(b"s3cret", b"1700000000." + body, hashlib.sha256).hexdigest()
        assert request == HttpRequest(
            "POST",
            "https://example.com/hook",
            (
                ("Content-Type", "application/json"),
                ("User-Agent", "controltower-notify"),
                ("Idempotency-Key", "incident:42:firing:ops"),
                ("X-Tower-Event", "incident.firing"),
                ("X-Tower-Timestamp", "1700000000"),
                ("X-Tower-Signature", f"sha256={expected}"),
            ),
            body,
        )

    def test_body_schema(self) -> None:
        """The webhook JSON carries every field of the notification and the outbox key."""
        assert json.loads(render.dumps(render.webhook_body(DELIVERY))) == {
            "schema": "controltower.notification/v1",
            "id": "incident:42:firing:ops",
            "channel": "ops",
            "kind": "incident.firing",
            "title": "api is down",
            "text": NOTE.text,
            "severity": "critical",
            "service": "shop",
            "environment": "production",
            "url": "https://tower.example.com/incidents/42",
            "fields": {"monitor": "health", "since": "12:00 UTC"},
            "labels": {"team": "web"},
            "created_at": "2026-03-01T12:00:00+00:00",
        }

    def test_unsigned_without_secret(self) -> None:
        channel = WebhookChannel("hook", channel_spec(type="webhook", url="https://e.com/h"))
        names = [name for name, _ in channel.build_request(DELIVERY, now=0).headers]
        assert "X-Tower-Signature" not in names

    def test_same_delivery_same_body(self) -> None:
        """A retry sends identical bytes, so idempotent receivers can compare bodies."""
        channel = WebhookChannel("hook", channel_spec(type="webhook", url="https://e.com/h"))
        later = Delivery(DELIVERY.key, "ops", NOTE, CREATED, attempt=5)
        assert (
            channel.build_request(DELIVERY, now=1).content
            == channel.build_request(later, now=999).content
        )


class TestVerify:
    def test_accepts_a_fresh_signature(self) -> None:
        signature = sign("k", 1000, b"{}")
        assert verify("k", b"{}", timestamp="1000", signature=signature, now=1100)

    @pytest.mark.parametrize(
        ("secret", "body", "timestamp", "now"),
        [
            ("other", b"{}", "1000", 1000),
            ("k", b'{"x":1}', "1000", 1000),
            ("k", b"{}", "1001", 1001),
            ("k", b"{}", "1000", 1000 + 301),
            ("k", b"{}", "soon", 1000),
        ],
    )
    def test_rejects(self, secret: str, body: bytes, timestamp: str, now: float) -> None:
        """A wrong secret, a changed body or timestamp, a stale or garbled timestamp fail."""
        signature = sign("k", 1000, b"{}")
        assert not verify(secret, body, timestamp=timestamp, signature=signature, now=now)


class TestResendRequest:
    def test_request_shape(self) -> None:
        """POST /emails with Bearer auth, the idempotency key and from/to/subject/html/text."""
        channel = ResendChannel(
            "mail",
            channel_spec(
                type="resend",
                api_key="re_abc123",
                api_url="http://127.0.0.1:9/",
                to=["ops@example.com"],
                **{"from": "Tower <tower@example.com>"},
            ),
        )
        request = channel.build_request(DELIVERY, now=0)
        assert request.method == "POST"
        assert request.url == "http://127.0.0.1:9/emails"
        assert dict(request.headers) == {
            "Authorization": "Bearer re_abc123",
            "Content-Type": "application/json",
            "User-Agent": "controltower-notify",
            "Idempotency-Key": "incident:42:firing:ops",
        }
        assert json.loads(request.content) == {
            "from": "Tower <tower@example.com>",
            "to": ["ops@example.com"],
            "subject": "[tower] [CRITICAL] api is down (shop/production)",
            "html": render.email_html(DELIVERY),
            "text": render.email_text(DELIVERY),
        }

    def test_default_endpoint(self) -> None:
        channel = ResendChannel(
            "mail",
            channel_spec(type="resend", api_key="k", to=["a@b.co"], **{"from": "t@b.co"}),
        )
        assert channel.endpoint == "https://api.resend.com/emails"

    def test_long_keys_are_hashed_to_fit(self) -> None:
        """Resend accepts idempotency keys up to 256 characters; longer keys are hashed."""
        long = Delivery("x" * 300, "mail", NOTE, CREATED)
        assert len(long.idempotency_key) <= 256
        assert long.idempotency_key == Delivery("x" * 300, "m", NOTE, CREATED).idempotency_key
        assert DELIVERY.idempotency_key == DELIVERY.key

    def test_repr_hides_secrets(self) -> None:
        """Printing a request never shows the URL or the Authorization header."""
        channel = SlackChannel("ops", channel_spec(type="slack", url=SLACK_URL))
        assert "secrettoken123" not in repr(channel.build_request(DELIVERY, now=0))


class TestEmail:
    def test_text(self) -> None:
        """The plain-text email has the title, place, text, fields, link and key."""
        assert render.email_text(DELIVERY) == (
            "api is down\n"
            "shop/production · critical · incident.firing\n"
            "\n"
            "3 of 3 checks failed: status == 200 (got 502)\n"
            "\n"
            "monitor: health\n"
            "since: 12:00 UTC\n"
            "\n"
            "https://tower.example.com/incidents/42\n"
            "\n"
            "--\n"
            "Sent by controltower at 2026-03-01 12:00:00 UTC (incident:42:firing:ops)\n"
        )

    def test_html_escapes(self) -> None:
        """HTML email escapes what it shows and is coloured by severity."""
        note = Notification(
            key="k", kind="error.new", title="<script>x</script>", severity="warning"
        )
        html = render.email_html(Delivery("k:m", "m", note, CREATED))
        assert "<script>x" not in html
        assert "&lt;script&gt;x&lt;/script&gt;" in html
        assert "border-left:6px solid #ECB22E" in html

    def test_smtp_message(self) -> None:
        """The SMTP message is multipart text+HTML with a Message-ID derived from the key."""
        channel = SmtpChannel(
            "mail",
            channel_spec(type="smtp", host="mx", to=["a@b.co", "c@d.co"], **{"from": "t@b.co"}),
        )
        message = channel.build_message(DELIVERY)
        again = channel.build_message(DELIVERY)
        assert message["Message-ID"] == again["Message-ID"]
        assert message["Message-ID"].endswith("@controltower.invalid>")
        assert message["To"] == "a@b.co, c@d.co"
        assert message["Subject"] == "[tower] [CRITICAL] api is down (shop/production)"
        parts = [part.get_content_type() for part in message.iter_parts()]
        assert parts == ["text/plain", "text/html"]

    def test_subject_of_good_news_has_no_severity(self) -> None:
        note = Notification(key="k", kind="incident.resolved", title="api is up", service="shop")
        assert render.subject(note) == "api is up (shop)"


class TestScrub:
    def test_secrets_and_url_paths_are_removed(self) -> None:
        """Known secrets, URL paths and bearer tokens never reach last_error."""
        text = (
            f"ConnectError: [Errno 111] for url {SLACK_URL}?x=1 "
            "with Authorization: Bearer re_abc123 and key s3cretvalue "
            "via tgram://123456:ABCDEF/987"
        )
        cleaned = scrub(text, ["s3cretvalue"])
        assert "secrettoken123" not in cleaned
        assert "re_abc123" not in cleaned
        assert "s3cretvalue" not in cleaned
        assert "ABCDEF" not in cleaned
        assert "https://hooks.slack.com/..." in cleaned
        assert "tgram://***" in cleaned

    def test_long_errors_are_cut(self) -> None:
        assert len(scrub("e" * 5000)) == 500


class TestRetryAfter:
    @pytest.mark.parametrize(
        ("value", "expected"),
        [
            ("7", 7.0),
            ("0.5", 0.5),
            ("Sun, 01 Mar 2026 12:00:30 GMT", 30.0),
            ("garbage", None),
            (None, None),
            ("-3", 0.0),
        ],
    )
    def test_parse(self, value: str | None, expected: float | None) -> None:
        """Retry-After is seconds or an HTTP date, measured from now."""
        assert retry_after(value, now=CREATED.timestamp()) == expected


class TestRetryPolicy:
    def test_exponential_capped_with_jitter(self) -> None:
        """Delays double from the base up to the cap; jitter spreads the upper half."""
        policy = RetryPolicy(base=2, cap=60, jitter=0.5)
        assert [policy.delay(n, 1.0) for n in (1, 2, 3, 6, 7, 30)] == [2, 4, 8, 60, 60, 60]
        assert [policy.delay(n, 0.0) for n in (1, 2, 3)] == [1, 2, 4]

    def test_gives_up_on_attempts_or_age(self) -> None:
        policy = RetryPolicy(max_attempts=3, max_age=60)
        assert not policy.gives_up(2, 59)
        assert policy.gives_up(3, 0)
        assert policy.gives_up(1, 60)


class TestBuildChannels:
    def test_missing_keys_are_refused_by_the_spec_with_file_and_line(self) -> None:
        """A channel without a key its type needs is a spec error naming the key and line."""
        with pytest.raises(SpecError) as caught:
            parse_spec(
                '[service]\nname = "shop"\n[alerts.channels.mail]\ntype = "resend"\n'
                'to = ["a@b.co"]\n'
                '[alerts.channels.ops]\ntype = "slack"\nurl = "https://hooks.slack.com/x"\n',
                environ={},
            )
        text = str(caught.value)
        assert "tower.toml:3: alerts.channels.mail.api_key: required key is missing" in text
        assert "tower.toml:3: alerts.channels.mail.from: required key is missing" in text
        assert "alerts.channels.ops" not in text

    @pytest.mark.parametrize(
        ("table", "message"),
        [
            ('type = "slack"', "alerts.channels.ops.url: required key is missing"),
            ('type = "webhook"\nsecret = "s"', "alerts.channels.ops.url: required key is missing"),
            ('type = "smtp"\nurl = "https://x"\nfrom = "a@b.co"\nto = ["c@d.co"]', "url"),
            (
                'type = "resend"\napi_key = "re_x"\nfrom = "a@b.co"\nto = []',
                "alerts.channels.ops.to",
            ),
            (
                'type = "pager"\nurl = "https://x"',
                "alerts.channels.ops.type: must be one of slack, resend, smtp, webhook, apprise",
            ),
        ],
    )
    def test_each_type_takes_its_own_keys(self, table: str, message: str) -> None:
        """Each channel type refuses a table missing its keys or carrying another type's."""
        with pytest.raises(SpecError) as caught:
            parse_spec(f'[service]\nname = "shop"\n[alerts.channels.ops]\n{table}\n', environ={})
        assert message in str(caught.value)
        assert "tower.toml:" in str(caught.value)

    def test_an_empty_value_from_the_environment_is_named_when_building(self) -> None:
        """`url = "${HOOK:-}"` with HOOK unset validates, and the channel says it is empty."""
        spec = parse_spec(
            '[service]\nname = "shop"\n[alerts.channels.ops]\ntype = "slack"\nurl = "${HOOK:-}"\n',
            environ={},
        )
        built, problems = build_channels(spec.alerts)
        assert built == {}
        assert problems["ops"].startswith(
            "channel 'ops' (slack) has an empty `url` in [alerts.channels.ops]"
        )

    def test_a_channel_refuses_another_types_spec(self) -> None:
        """Building a channel class from another type's spec is a NotifyError, not a crash later."""
        with pytest.raises(NotifyError, match="is a slack channel, not resend"):
            ResendChannel("mail", parse_channel({"type": "slack", "url": "https://x/y"}))  # type: ignore[arg-type]
        assert (
            list(build_channels(parse_spec('[service]\nname = "s"\n', environ={}).alerts)[0]) == []
        )

    def test_default_rates(self) -> None:
        """Slack is held to one message a second unless the spec says otherwise."""
        assert SlackChannel("s", channel_spec(type="slack", url="https://x/y")).rate == 1.0
        assert SlackChannel("s", channel_spec(type="slack", url="https://x/y", rate=5)).rate == 5
        assert WebhookChannel("w", channel_spec(type="webhook", url="https://x/y")).rate is None
