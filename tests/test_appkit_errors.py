"""Error capture: Sentry envelopes to a DSN, logging handler, structlog processor, bounded queue."""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Iterator, Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry, generate_latest

from controltower.appkit import (
    DsnSink,
    ErrorEvent,
    ErrorReporter,
    JsonlSink,
    Metrics,
    Sink,
    StoreSink,
    capture_errors,
    envelope,
    parse_dsn,
)
from controltower.exceptions import IngestError


def parse_envelope(
    body: bytes,
) -> tuple[dict[str, Any], list[tuple[dict[str, Any], dict[str, Any]]]]:
    """Parse an envelope as a Sentry-compatible ingest endpoint does: header line, then items."""
    header_line, rest = body.split(b"\n", 1)
    items = []
    while rest.strip():
        item_line, rest = rest.split(b"\n", 1)
        item = json.loads(item_line)
        payload, rest = rest[: item["length"]], rest[item["length"] :].lstrip(b"\n")
        items.append((item, json.loads(payload)))
    return json.loads(header_line), items


class Ingest(ThreadingHTTPServer):
    """A local ingest endpoint: POST /api/<project>/envelope/ with X-Sentry-Auth."""

    daemon_threads = True

    def __init__(self, key: str = "abc123", project: str = "7", fail_first: int = 0) -> None:
        self.key, self.project, self.fail_first = key, project, fail_first
        self.events: list[dict[str, Any]] = []
        self.headers_seen: list[dict[str, Any]] = []
        self.rejected = 0
        self.received = threading.Condition()
        super().__init__(("127.0.0.1", 0), _IngestHandler)
        threading.Thread(target=self.serve_forever, daemon=True).start()

    @property
    def dsn(self) -> str:
        return f"http://{self.key}@127.0.0.1:{self.server_address[1]}/{self.project}"

    def wait_for(self, count: int, timeout: float = 10) -> list[dict[str, Any]]:
        with self.received:
            self.received.wait_for(lambda: len(self.events) >= count, timeout)
        return self.events


class _IngestHandler(BaseHTTPRequestHandler):
    server: Ingest

    def log_message(self, *args: Any) -> None:
        pass

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        server = self.server
        if server.fail_first > 0:
            server.fail_first -= 1
            self.send_response(503)
            self.end_headers()
            return
        auth = self.headers.get("X-Sentry-Auth", "")
        if (
            self.path != f"/api/{server.project}/envelope/"
            or f"sentry_key={server.key}" not in auth
        ):
            server.rejected += 1
            self.send_response(401)
            self.end_headers()
            return
        header, items = parse_envelope(body)
        with server.received:
            server.headers_seen.append(
                {"auth": auth, "type": self.headers["Content-Type"], **header}
            )
            server.events.extend(payload for item, payload in items if item["type"] == "event")
            server.received.notify_all()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(json.dumps({"id": header["event_id"]}).encode())


@pytest.fixture
def ingest() -> Iterator[Ingest]:
    server = Ingest()
    yield server
    server.shutdown()
    server.server_close()


@pytest.fixture
def logger() -> Iterator[logging.Logger]:
    log = logging.getLogger(f"appkit-test-{time.monotonic_ns()}")
    log.propagate = False
    yield log
    log.handlers.clear()


class Blocking(Sink):
    """A sink that waits until released: a slow or hung error backend."""

    def __init__(self) -> None:
        self.release = threading.Event()
        self.got: list[ErrorEvent] = []
        self.batches: list[int] = []

    def send(self, events: Sequence[ErrorEvent]) -> int:
        self.release.wait(10)
        self.got.extend(events)
        self.batches.append(len(events))
        return 0


class Exploding(Sink):
    def send(self, events: Sequence[ErrorEvent]) -> int:
        raise RuntimeError("backend is on fire")


def fail_somewhere(password: str) -> None:
    raise ValueError(f"bad input; connect postgresql://app:{password}@db/shop failed")


class TestDsn:
    def test_parse(self) -> None:
        """A DSN gives the key, project and the envelope URL (with any path prefix)."""
        dsn = parse_dsn("https://k3y@errors.example.com:8443/sub/42")
        assert (dsn.key, dsn.project_id) == ("k3y", "42")
        assert dsn.envelope_url == "https://errors.example.com:8443/sub/api/42/envelope/"
        assert dsn.auth_header == "Sentry sentry_key=k3y, sentry_version=7"

    @pytest.mark.parametrize("bad", ["", "http://host/1", "ftp://k@host/1", "http://k@host/"])
    def test_bad_dsn(self, bad: str) -> None:
        """A DSN without key, host or project is refused with a hint."""
        with pytest.raises(IngestError, match="DSN"):
            parse_dsn(bad)

    def test_envelope_shape(self) -> None:
        """An envelope is a header line, an item header with the byte length, and the event."""
        event = ErrorEvent(
            "boom", code="E42", context={"order": 7}, release="1.2.3", environment="staging"
        )
        header, items = parse_envelope(envelope(event))
        assert header["event_id"] == event.event_id and "sent_at" in header
        ((item, payload),) = items
        assert item["type"] == "event" and item["content_type"] == "application/json"
        assert payload["platform"] == "python" and payload["level"] == "error"
        assert payload["tags"] == {"code": "E42"} and payload["extra"] == {"order": 7}
        assert (payload["release"], payload["environment"], payload["message"]) == (
            "1.2.3",
            "staging",
            "boom",
        )


class TestDelivery:
    def test_logged_exception_reaches_the_ingest_endpoint(
        self, ingest: Ingest, logger: logging.Logger
    ) -> None:
        """logger.exception sends one event with level, code, context, stack frames and no secrets."""
        reporter = ErrorReporter(DsnSink(ingest.dsn), environment="production", release="1.4.2")
        logger.addHandler(reporter.handler())
        secret = "".join(("hun", "ter2"))
        try:
            fail_somewhere(secret)
        except ValueError:
            logger.exception(
                "checkout failed",
                extra={"code": "checkout_failed", "order_id": 17, "api_token": "tok_live_x"},
            )
        logger.info("not an error")
        assert reporter.flush(10)
        (event,) = ingest.wait_for(1)
        assert event["message"] == "checkout failed" and event["level"] == "error"
        assert event["tags"]["code"] == "checkout_failed"
        assert event["extra"]["order_id"] == 17 and event["extra"]["api_token"] == "[redacted]"
        (exc,) = event["exception"]["values"]
        assert exc["type"] == "ValueError" and "hunter2" not in json.dumps(event)
        functions = [f["function"] for f in exc["stacktrace"]["frames"]]
        assert functions[-1] == "fail_somewhere"
        assert ingest.headers_seen[0]["auth"] == "Sentry sentry_key=abc123, sentry_version=7"
        assert ingest.headers_seen[0]["type"] == "application/x-sentry-envelope"
        assert (reporter.sent, reporter.dropped, reporter.failed) == (1, 0, 0)
        reporter.close()

    def test_structlog_processor(self, ingest: Ingest) -> None:
        """The structlog processor captures error events with their bound context and passes them on."""
        import structlog

        reporter = ErrorReporter(DsnSink(ingest.dsn))
        output: list[dict[str, Any]] = []

        def keep(logger: Any, name: str, event_dict: Any) -> str:
            output.append(dict(event_dict))
            return ""

        log = structlog.wrap_logger(
            structlog.PrintLogger(open("/dev/null", "w")),  # noqa: SIM115
            processors=[structlog.processors.add_log_level, reporter.structlog_processor, keep],
        )
        log.info("fine")
        try:
            raise KeyError("sku")
        except KeyError:
            log.exception("lookup failed", code="sku_missing", user_id=3)
        log.error("payment declined", code="declined", password="pw")
        assert reporter.flush(10)
        events = ingest.wait_for(2)
        by_message = {e["message"]: e for e in events}
        assert set(by_message) == {"lookup failed", "payment declined"}
        assert by_message["lookup failed"]["exception"]["values"][0]["type"] == "KeyError"
        assert by_message["lookup failed"]["extra"] == {"user_id": 3}
        assert by_message["payment declined"]["extra"]["password"] == "[redacted]"
        assert len(output) == 3
        reporter.close()

    def test_retry_after_a_5xx(self, logger: logging.Logger) -> None:
        """A 503 from the endpoint is retried once, then the event arrives."""
        server = Ingest(fail_first=1)
        try:
            reporter = ErrorReporter(DsnSink(server.dsn, retry_delay=0.05))
            reporter.capture(reporter.event("flaky backend"))
            assert reporter.flush(10)
            assert [e["message"] for e in server.wait_for(1)] == ["flaky backend"]
            assert reporter.failed == 0
        finally:
            server.shutdown()
            server.server_close()

    def test_jsonl_sink(self, tmp_path: Path, logger: logging.Logger) -> None:
        """The JSONL sink writes one record per event with timestamp, environment, severity, code, stack."""
        reporter = capture_errors(
            sink=JsonlSink(tmp_path / "errors.jsonl"), logger=logger, environment="staging"
        )
        try:
            1 / 0  # noqa: B018
        except ZeroDivisionError:
            logger.critical("math broke", exc_info=True, extra={"code": "div0"})
        assert reporter.flush(10)
        (line,) = (tmp_path / "errors.jsonl").read_text().splitlines()
        record = json.loads(line)
        assert (record["severity"], record["code"], record["environment"]) == (
            "fatal",
            "div0",
            "staging",
        )
        assert (
            record["stack"].endswith("ZeroDivisionError: division by zero")
            and "test_jsonl_sink" in record["stack"]
        )
        assert record["timestamp"].endswith("Z")


class TestBatching:
    def test_events_are_sent_in_batches(self, logger: logging.Logger) -> None:
        """Events waiting in the queue go to the sink in batches of at most batch_size."""
        sink = Blocking()
        reporter = ErrorReporter(sink, batch_size=20, flush_interval=0.05)
        logger.addHandler(reporter.handler())
        for i in range(50):
            logger.error("error %d", i)
        sink.release.set()
        assert reporter.flush(10)
        assert sum(sink.batches) == 50 and max(sink.batches) <= 20
        assert len(sink.batches) <= 4, sink.batches
        assert [e.message for e in sink.got] == [f"error {i}" for i in range(50)]


class TestStoreSink:
    def test_events_land_in_the_store_grouped_into_issues(
        self, store_url: str, logger: logging.Logger
    ) -> None:
        """StoreSink writes events straight into the store's error tables (SQLite and PostgreSQL),
        grouped into one issue per fingerprint, with code, environment, release and stack."""
        from sqlalchemy import select

        from controltower.store import Store
        from controltower.store.models.ingest import ErrorEvent as Row
        from controltower.store.models.ingest import ErrorIssue, Project

        reporter = capture_errors(
            sink=StoreSink(store_url, project="shop"),
            logger=logger,
            environment="staging",
            release="1.4.2",
        )
        password = "hunter" + "2"
        for _ in range(3):
            try:
                fail_somewhere(password)
            except ValueError:
                logger.exception("checkout failed", extra={"code": "E_CHECKOUT", "order": 7})
        assert reporter.close(15)
        assert (reporter.sent, reporter.failed) == (3, 0)
        with Store.open(store_url) as store, store.session() as session:
            project = session.scalars(select(Project)).one()
            issue = session.scalars(select(ErrorIssue)).one()
            rows = session.scalars(select(Row)).all()
        assert project.name == "shop"
        assert issue.count == 3 and issue.project_id == project.id
        assert issue.title.startswith("ValueError: bad input")
        assert len(rows) == 3
        row = rows[0]
        assert (row.environment, row.release, row.code, row.level) == (
            "staging",
            "1.4.2",
            "E_CHECKOUT",
            "error",
        )
        assert "hunter2" not in json.dumps(row.data, default=str) + issue.title
        frames = row.data["exception"][-1]["frames"]
        assert frames[-1]["function"] == "fail_somewhere"

    def test_existing_project_is_reused(self, tmp_path: Path) -> None:
        """A second sink (another process) finds the project instead of creating a new one."""
        from sqlalchemy import func, select

        from controltower.store import Store
        from controltower.store.models.ingest import Project

        url = f"sqlite:///{tmp_path / 'tower.db'}"
        for message in ("first", "second"):
            reporter = ErrorReporter(StoreSink(url, project="shop"))
            reporter.capture(reporter.event(message))
            assert reporter.close(15) and reporter.sent == 1
        with Store.open(url) as store, store.session() as session:
            assert session.scalar(select(func.count()).select_from(Project)) == 1

    def test_bad_project_name(self) -> None:
        """A project name tower serve would not accept is refused at once, with a hint."""
        with pytest.raises(IngestError, match="is not a project name"):
            StoreSink("sqlite://", project="My Shop")


class TestNeverBlocksNeverCrashes:
    def test_full_queue_drops_and_counts(self, logger: logging.Logger) -> None:
        """With the backend hung and the queue full, logging returns at once and drops are counted."""
        sink = Blocking()
        reporter = ErrorReporter(sink, queue_size=5, batch_size=1, flush_interval=0.01)
        logger.addHandler(reporter.handler())
        started = time.perf_counter()
        for i in range(200):
            logger.error("error %d", i)
        assert time.perf_counter() - started < 2.0
        assert reporter.dropped >= 190
        assert reporter.captured + reporter.dropped == 200
        sink.release.set()
        assert reporter.flush(10)
        assert len(sink.got) == reporter.captured

    def test_failing_sink_is_counted_not_raised(self, logger: logging.Logger) -> None:
        """A sink that raises only counts failures; the app's logging call succeeds."""
        reporter = ErrorReporter(Exploding())
        logger.addHandler(reporter.handler())
        logger.error("one")
        logger.error("two")
        assert reporter.flush(10)
        assert reporter.failed == 2 and reporter.sent == 0

    def test_counters_are_exported(self, logger: logging.Logger) -> None:
        """The reporter's outcomes are Prometheus counters on the app's /metrics."""
        sink = Blocking()
        reporter = ErrorReporter(sink, queue_size=1, batch_size=1)
        metrics = Metrics(registry=CollectorRegistry(), process_metrics=False)
        metrics.register(reporter)
        logger.addHandler(reporter.handler())
        for _ in range(10):
            logger.error("x")
        text = generate_latest(metrics.registry).decode()
        assert f'appkit_error_events_total{{outcome="dropped"}} {float(reporter.dropped)}' in text
        assert reporter.dropped >= 8
        sink.release.set()
        reporter.flush(10)

    def test_unreachable_dsn_counts_failures(self, logger: logging.Logger) -> None:
        """An endpoint that is down makes events fail (counted) without raising into the app."""
        from tests.conftest import free_port

        reporter = ErrorReporter(
            DsnSink(f"http://k@127.0.0.1:{free_port()}/1", retry_delay=0.01, timeout=1)
        )
        logger.addHandler(reporter.handler())
        logger.error("lost")
        assert reporter.flush(10)
        assert reporter.failed == 1

    def test_capture_errors_needs_a_dsn(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """capture_errors without a DSN says how to give one."""
        monkeypatch.delenv("TOWER_DSN", raising=False)
        monkeypatch.delenv("SENTRY_DSN", raising=False)
        with pytest.raises(IngestError, match="no DSN"):
            capture_errors()
