"""Bounded work for any body: streamed decoding under caps, JSON caps, storable text."""

from __future__ import annotations

import gzip
import json
import math
import zlib
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import brotli
import pytest

from controltower.ingest.csp import parse_csp
from controltower.ingest.decode import (
    RATIO_FLOOR,
    brotli_window_bits,
    decode_prefix,
    decompress,
)
from controltower.ingest.envelope import parse_envelope
from controltower.ingest.errors import Rejected, TooLarge
from controltower.ingest.event import parse_event
from controltower.ingest.limits import IngestLimits, load_json, load_object
from controltower.ingest.scrub import FILTERED, scrub, scrub_text

BOMBS = Path(__file__).parent / "fixtures" / "bombs"
NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)


def _raw_deflate(data: bytes) -> bytes:
    compressor = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)
    return compressor.compress(data) + compressor.flush()


class TestDecoding:
    @pytest.mark.parametrize(
        "encode, name",
        [
            (gzip.compress, "gzip"),
            (zlib.compress, "deflate"),
            (_raw_deflate, "deflate"),
            (brotli.compress, "br"),
        ],
    )
    def test_every_encoding_round_trips(self, encode: Callable[[bytes], bytes], name: str) -> None:
        """gzip, deflate (zlib or raw) and br bodies decode to what was sent."""
        body = json.dumps({"message": "hello " * 500}).encode()
        assert decompress(encode(body), name, limit=1 << 20, ratio=200) == body

    @pytest.mark.parametrize(
        "encode, name",
        [(gzip.compress, "gzip"), (zlib.compress, "deflate"), (brotli.compress, "br")],
    )
    def test_decoded_size_is_capped(self, encode: Callable[[bytes], bytes], name: str) -> None:
        """A body that decodes past the limit is refused, naming max_event_size."""
        body = encode(bytes(range(256)) * 8192)
        with pytest.raises(TooLarge) as caught:
            decompress(body, name, limit=100_000, ratio=100_000)
        assert caught.value.cap == "max_event_size"
        assert "max_event_size" in caught.value.message

    @pytest.mark.parametrize(
        "encode, name",
        [(gzip.compress, "gzip"), (zlib.compress, "deflate"), (brotli.compress, "br")],
    )
    def test_ratio_is_capped(self, encode: Callable[[bytes], bytes], name: str) -> None:
        """Past 64 KiB, a body may not decode to more than ratio times its size."""
        bomb = encode(b"\0" * (RATIO_FLOOR * 8))
        with pytest.raises(TooLarge) as caught:
            decompress(bomb, name, limit=1 << 30, ratio=20)
        assert caught.value.cap == "max_decompression_ratio"
        small = encode(b"\0" * 1000)
        assert decompress(small, name, limit=1 << 30, ratio=2) == b"\0" * 1000

    def test_brotli_bomb_stops_at_the_cap(self) -> None:
        """A 2 GiB brotli bomb (4 MiB window) is refused after decoding little more than
        the cap."""
        bomb = (BOMBS / "zeros-2048-w22.br").read_bytes()
        assert 200 <= len(bomb) <= 4096
        assert brotli_window_bits(bomb) == 22
        with pytest.raises(TooLarge):
            decompress(bomb, "br", limit=1 << 20, ratio=200)
        assert len(decode_prefix(bomb, "br", 16384)) == 16384

    def test_brotli_windows_past_4_mib_are_refused_undecoded(self) -> None:
        """A brotli stream declaring a 16 MiB window (which the decoder would fill before
        any output limit applies) is 400 before decoding; SDK-sized windows decode."""
        bomb = (BOMBS / "zeros-4096.br").read_bytes()
        assert brotli_window_bits(bomb) == 24
        with pytest.raises(Rejected) as caught:
            decode_prefix(bomb, "br", 16384)
        assert caught.value.status == 400
        assert "window" in caught.value.message
        for bits in range(10, 23):
            body = brotli.compress(b"event " * 100, lgwin=bits)
            assert brotli_window_bits(body) == bits
            assert decompress(body, "br", limit=1 << 20, ratio=200) == b"event " * 100

    @pytest.mark.parametrize("name", ["gzip", "deflate", "br"])
    def test_garbage_and_truncation_are_400(self, name: str) -> None:
        """Bytes that are not the declared encoding, or a cut-off stream, are 400."""
        with pytest.raises(Rejected) as caught:
            decompress(b"not compressed at all", name, limit=1000, ratio=10)
        assert caught.value.status == 400
        whole = {"gzip": gzip.compress, "deflate": zlib.compress, "br": brotli.compress}[name](
            b"x" * 5000
        )
        with pytest.raises(Rejected) as caught:
            decompress(whole[: len(whole) // 2], name, limit=100_000, ratio=100)
        assert caught.value.status == 400

    def test_unknown_encoding_is_415(self) -> None:
        """An encoding other than gzip, deflate, br or identity is 415."""
        with pytest.raises(Rejected) as caught:
            decompress(b"x", "zstd", limit=10)
        assert caught.value.status == 415


class TestJsonCaps:
    LIMITS = IngestLimits(max_json_depth=8, max_string_size=100, max_envelope_items=3)

    def test_depth_is_capped(self) -> None:
        """JSON nested past max_json_depth is 400 naming the setting and where."""
        deep = b'{"a":' * 9 + b"1" + b"}" * 9
        with pytest.raises(Rejected) as caught:
            load_json(deep, self.LIMITS, "event")
        assert caught.value.status == 400
        assert caught.value.cap == "max_json_depth"
        assert "a.a.a" in caught.value.message
        assert load_json(b'{"a":' * 8 + b"1" + b"}" * 8, self.LIMITS, "event")

    def test_nesting_deeper_than_the_parser_is_400(self) -> None:
        """Nesting deep enough to exhaust the parser is a 400, not a crash."""
        with pytest.raises(Rejected):
            load_json(b"[" * 200_000 + b"]" * 200_000, IngestLimits(), "event")

    def test_string_size_is_capped(self) -> None:
        """A string (or key) longer than max_string_size is 413 naming its path."""
        with pytest.raises(TooLarge) as caught:
            load_json(json.dumps({"extra": {"blob": "x" * 101}}).encode(), self.LIMITS, "event")
        assert caught.value.cap == "max_string_size"
        assert "extra.blob" in caught.value.message
        with pytest.raises(TooLarge):
            load_json(json.dumps({"k" * 101: 1}).encode(), self.LIMITS, "event")

    def test_envelope_items_are_capped(self) -> None:
        """An envelope with more items than max_envelope_items is 413."""
        items = b"".join(b'{"type":"event"}\n{}\n' for _ in range(4))
        with pytest.raises(TooLarge) as caught:
            parse_envelope(b"{}\n" + items, self.LIMITS)
        assert caught.value.cap == "max_envelope_items"
        assert len(parse_envelope(b"{}\n" + items[: len(items) // 4 * 3], self.LIMITS).items) == 3

    def test_not_an_object(self) -> None:
        """An event must be a JSON object."""
        with pytest.raises(Rejected):
            load_object(b"[1, 2]", IngestLimits(), "event")


class TestStorableText:
    def test_lone_surrogates_and_nul_are_made_storable(self) -> None:
        """Lone surrogates become U+FFFD and NUL is removed, in values and in keys."""
        raw = b'{"message": "a\\ud800b\\u0000c", "extra": {"k\\udfff": ["\\u0000x"]}}'
        value = load_object(raw, IngestLimits(), "event")
        assert value == {"message": "a\ufffdbc", "extra": {"k\ufffd": ["x"]}}
        json.dumps(value).encode("utf-8")

    def test_invalid_utf8_is_replaced(self) -> None:
        """Bytes that are not UTF-8 become U+FFFD instead of refusing the event."""
        assert load_object(b'{"message": "caf\xe9"}', IngestLimits(), "event") == {
            "message": "caf\ufffd"
        }

    def test_non_finite_numbers_become_null(self) -> None:
        """NaN, Infinity and numbers too large for a float (1e400) become null."""
        value = load_object(
            b'{"a": NaN, "b": -Infinity, "c": 1e400, "d": [-1e400, 2.5]}', IngestLimits(), "x"
        )
        assert value == {"a": None, "b": None, "c": None, "d": [None, 2.5]}

    @pytest.mark.parametrize(
        "timestamp",
        ["0001-01-01T00:00:00Z", "9999-12-31T23:59:59-05:00", 1e300, -1e18, 253402300800],
    )
    def test_out_of_range_timestamps_become_the_receipt_time(self, timestamp: object) -> None:
        """A timestamp that no store can hold, or far from the receipt, is the receipt time."""
        event = parse_event({"message": "m", "timestamp": timestamp}, project_id=1, received_at=NOW)
        assert event.timestamp == NOW

    def test_plausible_timestamps_are_kept(self) -> None:
        """A timestamp within 30 days before receipt (and a minute after) is the event's."""
        sent = NOW - timedelta(days=29)
        event = parse_event(
            {"message": "m", "timestamp": sent.timestamp()}, project_id=1, received_at=NOW
        )
        assert event.timestamp == sent
        assert not math.isnan(event.timestamp.timestamp())


class TestScrubberGaps:
    def test_shown_fields_are_scrubbed(self) -> None:
        """code (from tags), culprit/transaction, release and environment carry no secret."""
        event = parse_event(
            {
                "message": "m",
                "tags": {"code": "sk_live_4eC39HqLyjWDarjtT1zdp7dc"},
                "transaction": "/checkout?token=abcdef123456&step=2",
                "release": "https://deploy:hunter22@git.example/app",
            },
            project_id=1,
            received_at=NOW,
        )
        assert event.code == FILTERED
        assert "abcdef123456" not in event.culprit and "step=2" in event.culprit
        assert "hunter22" not in event.release
        assert "sk_live" not in json.dumps(event.data)

    def test_query_strings_and_urls(self) -> None:
        """A query string starting with a secret pair, and URL credentials, are filtered."""
        request = scrub({"request": {"query_string": "token=abc123&page=2"}})
        assert request == {"request": {"query_string": f"token={FILTERED}&page=2"}}
        assert scrub_text("redis://:hunter2@cache:6379") == f"redis://{FILTERED}@cache:6379"

    @pytest.mark.parametrize(
        "secret",
        [
            "https://hooks.slack.com/services/T01ABCDEF/B01ABCDEF/abcdefghijklmnopqrstuvwx",
            "https://discord.com/api/webhooks/1234567890/abcdefghijklmnopqrstuvwxyz",
            "whsec_abcdefghijklmnopqrstuvwxyz",
            "github_pat_11ABCDEFG0123456789_abcdefghijklmnopqrstuvwxyz",
            "eyJhbGciOiJIUzI1NiJ9.eyJyb2xlIjoic2VydmljZV9yb2xlIn0.c2lnbmF0dXJlLXZhbHVl",
            "sk-proj-abcdefghijklmnopqrstuvwxyz012345",
            "sb_secret_abcdefghijklmnopqrstuv",
            "-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC\n-----END PRIVATE KEY-----",
        ],
    )
    def test_known_secret_shapes(self, secret: str) -> None:
        """Webhook URLs that are their own secret and keys of known formats are filtered."""
        scrubbed = scrub_text(f"posting to {secret} failed")
        assert FILTERED in scrubbed
        assert secret.rsplit("/", 1)[-1][-12:] not in scrubbed

    def test_csp_blocked_uri_loses_credentials(self) -> None:
        """A CSP report's blocked URI keeps scheme, host and port, never user:password."""
        report = json.dumps(
            {
                "csp-report": {
                    "effective-directive": "script-src",
                    "blocked-uri": "https://admin:hunter22@cdn.example:8443/x.js?token=abc",
                    "document-uri": "https://shop.example/?token=abcdef",
                }
            }
        ).encode()
        [violation] = parse_csp(report)
        assert violation.blocked_uri == "https://cdn.example:8443"
        assert "abcdef" not in violation.document_uri
        assert "hunter22" not in json.dumps(violation.sample)

    def test_csp_report_with_lone_surrogate_and_nul(self) -> None:
        """A CSP report with a lone surrogate or NUL is made storable, not refused."""
        report = (
            b'{"csp-report": {"effective-directive": "img\\u0000-src\\ud800", "blocked-uri": "x"}}'
        )
        [violation] = parse_csp(report)
        assert violation.directive == "img-src\ufffd"
