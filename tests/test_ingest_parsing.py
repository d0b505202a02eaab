"""Parsing Sentry envelopes and events, grouping, scrubbing, CSP reports, limits."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from controltower.ingest.buffer import IngestBuffer
from controltower.ingest.csp import parse_csp
from controltower.ingest.envelope import parse_envelope
from controltower.ingest.errors import Rejected
from controltower.ingest.event import parse_event
from controltower.ingest.grouping import fingerprint_for
from controltower.ingest.ratelimit import RateLimiter
from controltower.ingest.scrub import FILTERED, scrub, scrub_text
from controltower.ingest.sentry_auth import parse_auth_header, public_key
from controltower.testing import FakeClock

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)


def exception_event(
    kind: str = "ValueError", value: str = "bad", function: str = "handler"
) -> dict:
    return {
        "event_id": "9ec79c33ec9942ab8353589fcb2e04dc",
        "level": "error",
        "platform": "python",
        "release": "shop@1.0",
        "environment": "production",
        "exception": {
            "values": [
                {
                    "type": kind,
                    "value": value,
                    "stacktrace": {
                        "frames": [
                            {
                                "module": "django.core",
                                "function": "dispatch",
                                "in_app": False,
                                "lineno": 5,
                            },
                            {
                                "module": "shop.views",
                                "function": function,
                                "in_app": True,
                                "lineno": 42,
                            },
                        ]
                    },
                }
            ]
        },
    }


class TestEnvelope:
    def test_items_with_length_and_without(self) -> None:
        """Items are read by their header's length, or up to the next newline when it has none."""
        event = json.dumps({"message": "a\nb"}).encode()
        data = (
            b'{"event_id":"9ec79c33ec9942ab8353589fcb2e04dc","dsn":"https://k@h/1"}\n'
            + json.dumps({"type": "event", "length": len(event)}).encode()
            + b"\n"
            + event
            + b"\n"
            + b'{"type":"attachment","length":3}\nabc\n'
            + b'{"type":"session"}\n{"started":"x"}\n'
        )
        envelope = parse_envelope(data)
        assert envelope.headers["dsn"] == "https://k@h/1"
        assert [item.type for item in envelope.items] == ["event", "attachment", "session"]
        assert envelope.items[0].json() == {"message": "a\nb"}
        assert envelope.items[1].payload == b"abc"
        assert envelope.items[2].json() == {"started": "x"}

    def test_last_item_without_trailing_newline(self) -> None:
        """The final payload may end the body without a newline."""
        envelope = parse_envelope(b'{}\n{"type":"event"}\n{"level":"info"}')
        assert envelope.items[0].json() == {"level": "info"}

    @pytest.mark.parametrize(
        "data",
        [b"not json\n", b'{}\n{"type":"event","length":50}\n{}', b'{}\n{"length":-1}\n', b"[1]\n"],
    )
    def test_malformed_envelopes_are_rejected(self, data: bytes) -> None:
        """Bad headers, lengths past the end and non-object headers are a 400, not a crash."""
        with pytest.raises(Rejected):
            parse_envelope(data)


class TestSentryAuth:
    def test_header(self) -> None:
        """The key comes from X-Sentry-Auth as Sentry SDKs send it."""
        fields = parse_auth_header("Sentry sentry_key=abc, sentry_version=7, sentry_client=x/1")
        assert fields == {"sentry_key": "abc", "sentry_version": "7", "sentry_client": "x/1"}

    def test_header_then_query_then_dsn(self) -> None:
        """Header wins over the query string, which wins over the envelope's DSN."""
        assert public_key({"x-sentry-auth": "Sentry sentry_key=h"}, {"sentry_key": "q"}) == "h"
        assert public_key({}, {"sentry_key": "q"}, "https://d@host/1") == "q"
        assert public_key({}, {}, "https://d@host/1") == "d"
        assert public_key({}, {}) == ""


class TestEvent:
    def test_fields(self) -> None:
        """An exception event gives timestamp, level, environment, release, code, title, culprit."""
        payload = exception_event()
        payload["timestamp"] = "2026-11-25T11:59:00Z"
        event = parse_event(payload, project_id=1, received_at=NOW)
        assert event.event_id == "9ec79c33ec9942ab8353589fcb2e04dc"
        assert event.timestamp == datetime(2026, 11, 25, 11, 59, tzinfo=UTC)
        assert (event.level, event.environment, event.release) == (
            "error",
            "production",
            "shop@1.0",
        )
        assert event.code == "ValueError"
        assert event.title == "ValueError: bad"
        assert event.culprit == "shop.views in handler"
        assert event.data["exception"][0]["frames"][1]["lineno"] == 42

    def test_numeric_timestamp_and_level_aliases(self) -> None:
        """Epoch timestamps are read; "warn" is warning; an unknown level is error."""
        event = parse_event(
            {"timestamp": NOW.timestamp(), "level": "warn", "message": "m"},
            project_id=1,
            received_at=NOW,
        )
        assert event.timestamp == NOW
        assert event.level == "warning"
        assert parse_event({"level": "loud"}, project_id=1, received_at=NOW).level == "error"

    def test_code_from_tags(self) -> None:
        """A ``code`` tag is the event's code."""
        payload = {**exception_event(), "tags": {"code": "E_PAYMENT"}}
        assert parse_event(payload, project_id=1, received_at=NOW).code == "E_PAYMENT"

    def test_logentry_message(self) -> None:
        """logentry's formatted text shows, its template groups."""
        payload = {"logentry": {"message": "user %s missing", "formatted": "user 7 missing"}}
        event = parse_event(payload, project_id=1, received_at=NOW)
        assert event.message == "user 7 missing"
        assert event.data["template"] == "user %s missing"

    def test_nul_characters_are_replaced(self) -> None:
        """NUL characters, which PostgreSQL refuses, never reach the store."""
        event = parse_event(
            {"message": "a\x00b", "extra": {"k\x00": "v\x00"}}, project_id=1, received_at=NOW
        )
        assert "\x00" not in event.message
        assert "\x00" not in json.dumps(event.data)


class TestGrouping:
    def test_same_stack_different_message_groups_together(self) -> None:
        """Exception type and frames group; the message and line numbers do not."""
        one = parse_event(exception_event(value="user 1"), project_id=1, received_at=NOW)
        other = exception_event(value="user 2")
        other["exception"]["values"][0]["stacktrace"]["frames"][1]["lineno"] = 99
        two = parse_event(other, project_id=1, received_at=NOW)
        assert one.fingerprint == two.fingerprint

    def test_different_type_or_function_splits(self) -> None:
        """Another exception type or another in-app function is another issue."""
        base = parse_event(exception_event(), project_id=1, received_at=NOW).fingerprint
        assert (
            parse_event(exception_event(kind="KeyError"), project_id=1, received_at=NOW).fingerprint
            != base
        )
        assert (
            parse_event(
                exception_event(function="other"), project_id=1, received_at=NOW
            ).fingerprint
            != base
        )

    def test_custom_fingerprint(self) -> None:
        """An SDK fingerprint wins; ``{{ default }}`` extends the default grouping."""
        a = fingerprint_for([], "x", ["payments", "stripe"])
        assert a == fingerprint_for([], "y", ["payments", "stripe"])
        assert fingerprint_for([], "x", ["{{ default }}", "a"]) != fingerprint_for(
            [], "y", ["{{ default }}", "a"]
        )

    def test_messages_group_with_numbers_made_alike(self) -> None:
        """Message-only events group by template: ids and numbers do not split them."""
        assert fingerprint_for([], "order 123 failed") == fingerprint_for([], "order 456 failed")
        assert fingerprint_for([], "order 123 failed") != fingerprint_for([], "login failed")


class TestScrub:
    def test_sensitive_keys(self) -> None:
        """Values under password, token, authorization, cookie keys are filtered, at any depth."""
        data = {
            "request": {
                "headers": {"Authorization": "Bearer abc", "Accept": "text/html"},
                "cookies": "sid=1",
                "data": {"user": {"password": "hunter2", "name": "ann"}, "api_key": "k"},
            }
        }
        clean = scrub(data)
        assert clean["request"]["headers"] == {"Authorization": FILTERED, "Accept": "text/html"}
        assert clean["request"]["cookies"] == FILTERED
        assert clean["request"]["data"]["user"] == {"password": FILTERED, "name": "ann"}
        assert clean["request"]["data"]["api_key"] == FILTERED

    def test_header_pairs(self) -> None:
        """Headers sent as [name, value] pairs are filtered too."""
        assert scrub([["Cookie", "a=b"], ["Accept", "x"]]) == [
            ["Cookie", FILTERED],
            ["Accept", "x"],
        ]

    def test_card_numbers_luhn_checked(self) -> None:
        """Card numbers (Luhn-valid) are filtered in any text; other long numbers stay."""
        assert scrub_text("paid with 4242 4242 4242 4242 ok") == f"paid with {FILTERED} ok"
        assert scrub_text("card 4111-1111-1111-1111") == f"card {FILTERED}"
        assert scrub_text("order 1234567890123") == "order 1234567890123"

    def test_tokens_in_text(self) -> None:
        """Bearer tokens, tower tokens, URL passwords and secret query values are filtered."""
        text = scrub_text(
            "GET /x?token=abc&page=2 Authorization: Bearer eyJhbGciOi.x db=postgres://u:pw@h/d "
            "tower_abcdefghijklmnopqrstuv"
        )
        for secret in ("abc&", "eyJhbGciOi", ":pw@", "tower_abcdefghijklmnopqrstuv"):
            assert secret not in text
        assert "page=2" in text

    def test_secrets_assigned_in_source_lines(self) -> None:
        """A quoted secret assigned in code (a frame's source context) is filtered; the rest stays."""
        assert scrub_text('    password = "hunter2-very-secret"  # x') == (
            '    password = "[Filtered]"  # x'
        )
        assert scrub_text('{"api_key": "abcd1234"}') == '{"api_key": "[Filtered]"}'
        assert scrub_text("DB_TOKEN='xyz123'") == "DB_TOKEN='[Filtered]'"
        assert scrub_text('token_count = 3; name = "bob"') == 'token_count = 3; name = "bob"'

    def test_keys_of_known_formats(self) -> None:
        """Stripe, Resend, GitHub, Slack and AWS keys are filtered wherever they appear."""
        keys = [
            "sk_live_abcdefghijklmnop",
            "rk_test_51Habcdefgh",
            "re_123456789abcdefghij",
            "ghp_abcdefghijklmnopqrstuvwxyz0123",
            "xoxb-1234567890-abcdefghij",
            "AKIAABCDEFGHIJKLMNOP",
        ]
        text = scrub_text("set_extra('k', " + " ".join(f'"{key}"' for key in keys) + ")")
        assert not any(key in text for key in keys), text
        assert scrub_text("re_use the sk_ prefix") == "re_use the sk_ prefix"

    def test_events_are_scrubbed(self) -> None:
        """A parsed event keeps no secret from its request, extra data or frame variables."""
        payload = exception_event(value="card 4242424242424242 declined")
        payload["exception"]["values"][0]["stacktrace"]["frames"][1]["vars"] = {"password": "p"}
        payload["request"] = {"headers": {"Cookie": "sid=s"}, "url": "https://u:pw@x/"}
        payload["extra"] = {"note": "Bearer abcdefghijkl"}
        event = parse_event(payload, project_id=1, received_at=NOW)
        stored = json.dumps(event.data) + event.title
        for secret in ("4242424242424242", '"p"', "sid=s", ":pw@", "abcdefghijkl"):
            assert secret not in stored


class TestCsp:
    def test_report_uri_format(self) -> None:
        """``{"csp-report": {...}}`` gives directive and the blocked URL's origin."""
        body = json.dumps(
            {
                "csp-report": {
                    "document-uri": "https://shop.example/cart",
                    "violated-directive": "script-src-elem",
                    "effective-directive": "script-src-elem",
                    "blocked-uri": "https://evil.example/x.js?v=1",
                }
            }
        ).encode()
        [violation] = parse_csp(body)
        assert (violation.directive, violation.blocked_uri) == (
            "script-src-elem",
            "https://evil.example",
        )
        assert violation.document_uri == "https://shop.example/cart"

    def test_reporting_api_format(self) -> None:
        """Reporting API lists give one violation per csp-violation report; others are skipped."""
        body = json.dumps(
            [
                {
                    "type": "csp-violation",
                    "body": {
                        "effectiveDirective": "img-src",
                        "blockedURL": "data",
                        "documentURL": "https://a/",
                    },
                },
                {"type": "deprecation", "body": {}},
            ]
        ).encode()
        [violation] = parse_csp(body)
        assert (violation.directive, violation.blocked_uri) == ("img-src", "data")

    def test_neither_format(self) -> None:
        """Anything else is refused."""
        with pytest.raises(Rejected):
            parse_csp(b'{"hello": 1}')


class TestLimits:
    def test_rate_limit_refills(self) -> None:
        """A project gets ``rate_limit`` events per minute, refilled continuously."""
        clock = FakeClock()
        limiter = RateLimiter(clock)
        assert limiter.allow(1, 60, 60) == 0
        assert limiter.allow(1, 60, 1) == 1
        clock.advance(2)
        assert limiter.allow(1, 60, 2) == 0
        assert limiter.allow(2, 60, 1) == 0

    def test_buffer_refuses_when_full(self) -> None:
        """The buffer takes all of a request's events or none, and never grows past capacity."""
        event = parse_event({"message": "m"}, project_id=1, received_at=NOW)
        buffer = IngestBuffer(3)
        assert buffer.offer([event, event])
        assert not buffer.offer([event, event])
        assert len(buffer) == 2
        assert buffer.take(10) == [event, event]
        buffer.put_back([event])
        assert len(buffer) == 1
