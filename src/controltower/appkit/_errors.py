"""Error capture: error events from logging and structlog, shipped by a background worker.

Capturing never blocks and never raises: events go into a bounded queue; a
daemon thread drains it in batches into a ``Sink``. When the queue is full the
event is dropped and counted; the counters are a Prometheus collector.
"""

from __future__ import annotations

import atexit
import logging
import os
import queue
import socket
import sys
import threading
import time
import traceback
import uuid
from collections.abc import Iterator, Mapping, MutableMapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from types import TracebackType
from typing import Any, TypeAlias

from controltower.__about__ import __version__
from controltower.appkit._redact import redact, redact_mapping
from controltower.appkit._sinks import Sink
from controltower.clock import system_clock

ExcInfo: TypeAlias = tuple[type[BaseException], BaseException, TracebackType | None]
SEVERITIES = ("debug", "info", "warning", "error", "fatal")
_LEVELS = {
    logging.CRITICAL: "fatal",
    logging.ERROR: "error",
    logging.WARNING: "warning",
    logging.INFO: "info",
}
_STRUCTLOG_LEVELS = {
    "critical": "fatal",
    "fatal": "fatal",
    "exception": "error",
    "error": "error",
    "warning": "warning",
    "warn": "warning",
}
_RECORD_FIELDS = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {
    "message",
    "asctime",
    "taskName",
}
MAX_FRAMES = 50


@dataclass(frozen=True)
class ErrorEvent:
    """One error, ready to ship: what, when, where, and the secret-free context."""

    message: str
    severity: str = "error"
    code: str | None = None
    environment: str = "production"
    release: str | None = None
    exceptions: tuple[dict[str, Any], ...] = ()
    context: Mapping[str, Any] = field(default_factory=dict)
    logger: str | None = None
    server_name: str | None = None
    timestamp: float = field(default_factory=time.time)
    event_id: str = field(default_factory=lambda: uuid.uuid4().hex)

    @property
    def iso_timestamp(self) -> str:
        return datetime.fromtimestamp(self.timestamp, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")

    def as_sentry(self) -> dict[str, Any]:
        """The Sentry event payload (envelope item) for this error."""
        event: dict[str, Any] = {
            "event_id": self.event_id,
            "timestamp": self.iso_timestamp,
            "level": self.severity,
            "platform": "python",
            "environment": self.environment,
            "message": self.message,
            "tags": {"code": self.code} if self.code else {},
            "extra": dict(self.context),
            "sdk": {"name": "controltower.appkit", "version": __version__},
        }
        if self.release:
            event["release"] = self.release
        if self.logger:
            event["logger"] = self.logger
        if self.server_name:
            event["server_name"] = self.server_name
        if self.exceptions:
            event["exception"] = {"values": list(self.exceptions)}
        return event

    def as_record(self) -> dict[str, Any]:
        """A flat record (JSONL, store rows): timestamp, environment, severity, code, message, stack, context."""
        stack = ""
        if self.exceptions:
            last = self.exceptions[-1]
            frames = last.get("stacktrace", {}).get("frames", [])
            stack = (
                "".join(
                    f'  File "{f["abs_path"]}", line {f["lineno"]}, in {f["function"]}\n'
                    + (f"    {f['context_line']}\n" if f.get("context_line") else "")
                    for f in frames
                )
                + f"{last['type']}: {last['value']}"
            )
        return {
            "event_id": self.event_id,
            "timestamp": self.iso_timestamp,
            "environment": self.environment,
            "release": self.release,
            "severity": self.severity,
            "code": self.code,
            "message": self.message,
            "stack": stack,
            "context": dict(self.context),
            "logger": self.logger,
        }


def exception_values(exc: BaseException) -> tuple[dict[str, Any], ...]:
    """Sentry ``exception.values`` for ``exc`` and its causes, oldest first, secrets scrubbed."""
    chain: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and len(chain) < 5 and current not in chain:
        chain.append(current)
        current = current.__cause__ or (
            None if current.__suppress_context__ else current.__context__
        )
    values = []
    for item in reversed(chain):
        frames = [
            {
                "filename": os.path.basename(frame.filename),
                "abs_path": frame.filename,
                "function": frame.name,
                "module": _module_of(frame.filename),
                "lineno": frame.lineno,
                "context_line": redact(frame.line or ""),
                "in_app": "site-packages" not in frame.filename
                and "/lib/python" not in frame.filename,
            }
            for frame in traceback.extract_tb(item.__traceback__)[-MAX_FRAMES:]
        ]
        values.append(
            {
                "type": type(item).__name__,
                "module": type(item).__module__,
                "value": redact(str(item))[:2000],
                "stacktrace": {"frames": frames},
            }
        )
    return tuple(values)


def _module_of(filename: str) -> str:
    return os.path.splitext(os.path.basename(filename))[0]


def _exc_from(value: Any) -> BaseException | None:
    if isinstance(value, BaseException):
        return value
    if value is True:
        return sys.exc_info()[1]
    if isinstance(value, tuple) and len(value) == 3 and isinstance(value[1], BaseException):
        return value[1]
    return None


class ErrorReporter:
    """Ships error events to a ``Sink`` from a bounded queue, in batches, off the request path."""

    def __init__(
        self,
        sink: Sink,
        *,
        environment: str | None = None,
        release: str | None = None,
        server_name: str | None = None,
        queue_size: int = 1000,
        batch_size: int = 20,
        flush_interval: float = 0.5,
    ) -> None:
        self.sink = sink
        self.environment = environment or os.environ.get("APP_ENV") or "production"
        self.release = release or os.environ.get("APP_VERSION")
        self.server_name = server_name or socket.gethostname()
        self.batch_size = max(1, batch_size)
        self.flush_interval = flush_interval
        self._queue: queue.Queue[ErrorEvent] = queue.Queue(maxsize=max(1, queue_size))
        self._lock = threading.Lock()
        self._worker: threading.Thread | None = None
        self._worker_pid = 0
        self._closed = False
        self._attached: list[tuple[logging.Logger, logging.Handler]] = []
        self.captured = self.sent = self.dropped = self.failed = 0

    # -- capturing -------------------------------------------------------
    def capture(self, event: ErrorEvent) -> bool:
        """Queue ``event``; False (and counted as dropped) when the queue is full or closed."""
        if self._closed:
            self.dropped += 1
            return False
        try:
            self._ensure_worker()
            self._queue.put_nowait(event)
        except queue.Full:
            self.dropped += 1
            return False
        self.captured += 1
        return True

    def event(
        self,
        message: str,
        *,
        severity: str = "error",
        code: str | None = None,
        exc: BaseException | None = None,
        context: Mapping[str, Any] | None = None,
        logger: str | None = None,
    ) -> ErrorEvent:
        """Build an event with this reporter's environment and release, secrets scrubbed."""
        return ErrorEvent(
            message=redact(message)[:8000],
            severity=severity if severity in SEVERITIES else "error",
            code=str(code) if code is not None else None,
            environment=self.environment,
            release=self.release,
            exceptions=exception_values(exc) if exc is not None else (),
            context=redact_mapping(context or {}),
            logger=logger,
            server_name=self.server_name,
        )

    def capture_exception(
        self,
        exc: BaseException,
        *,
        message: str | None = None,
        code: str | None = None,
        context: Mapping[str, Any] | None = None,
    ) -> bool:
        return self.capture(
            self.event(
                message or f"{type(exc).__name__}: {exc}", code=code, exc=exc, context=context
            )
        )

    def handler(self, level: int = logging.ERROR) -> ErrorHandler:
        """A logging handler capturing records at ``level`` and above."""
        return ErrorHandler(self, level)

    def attach(
        self, logger: logging.Logger | None = None, level: int = logging.ERROR
    ) -> ErrorHandler:
        """Add a handler to ``logger`` (default: root); ``close`` removes it again."""
        handler = self.handler(level)
        target = logger or logging.getLogger()
        target.addHandler(handler)
        self._attached.append((target, handler))
        return handler

    def structlog_processor(
        self, logger: Any, method_name: str, event_dict: MutableMapping[str, Any]
    ) -> MutableMapping[str, Any]:
        """A structlog processor capturing error-level events; put it before ``format_exc_info``."""
        severity = _STRUCTLOG_LEVELS.get(str(event_dict.get("level", method_name)).lower())
        if severity not in ("error", "fatal") or self._in_worker():
            return event_dict
        try:
            exc = _exc_from(event_dict.get("exc_info", method_name == "exception" or None))
            skip = {"event", "level", "exc_info", "code", "timestamp", "logger"}
            context = {k: v for k, v in event_dict.items() if k not in skip}
            self.capture(
                self.event(
                    str(event_dict.get("event", "")),
                    severity=severity,
                    code=event_dict.get("code"),
                    exc=exc,
                    context=context,
                    logger=str(event_dict["logger"]) if "logger" in event_dict else None,
                )
            )
        except Exception:
            self.failed += 1
        return event_dict

    # -- the worker ------------------------------------------------------
    def _in_worker(self) -> bool:
        return threading.current_thread() is self._worker

    def _ensure_worker(self) -> None:
        if self._worker is not None and self._worker_pid == os.getpid():
            return
        with self._lock:
            if self._worker is not None and self._worker_pid == os.getpid():
                return
            self._worker = threading.Thread(
                target=self._drain, name="controltower-errors", daemon=True
            )
            self._worker_pid = os.getpid()
            self._worker.start()
            atexit.register(self.flush, 2.0)

    def _drain(self) -> None:
        while True:
            try:
                first = self._queue.get()
            except Exception:  # pragma: no cover - interpreter shutdown
                return
            batch = [first]
            deadline = system_clock.monotonic() + self.flush_interval
            while len(batch) < self.batch_size:
                remaining = deadline - system_clock.monotonic()
                if remaining <= 0 and self._queue.empty():
                    break
                try:
                    batch.append(self._queue.get(timeout=max(remaining, 0.001)))
                except queue.Empty:
                    break
            try:
                failed = self.sink.send(batch)
            except Exception:
                failed = len(batch)
            self.failed += failed
            self.sent += len(batch) - failed
            for _ in batch:
                self._queue.task_done()

    def flush(self, timeout: float = 5.0) -> bool:
        """Wait until every queued event was handed to the sink; False if ``timeout`` passed first."""
        end = system_clock.monotonic() + timeout
        with self._queue.all_tasks_done:
            while self._queue.unfinished_tasks:
                remaining = end - system_clock.monotonic()
                if remaining <= 0:
                    return False
                self._queue.all_tasks_done.wait(remaining)
        return True

    def close(self, timeout: float = 5.0) -> bool:
        """Flush, then refuse new events and close the sink."""
        done = self.flush(timeout)
        self._closed = True
        for logger, handler in self._attached:
            logger.removeHandler(handler)
        self._attached.clear()
        self.sink.close()
        return done

    # -- Prometheus collector ---------------------------------------------
    def describe(self) -> Iterator[Any]:
        return iter(())

    def collect(self) -> Iterator[Any]:
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

        family = CounterMetricFamily(
            "appkit_error_events",
            "Error events by outcome (captured, sent, dropped, failed)",
            labels=["outcome"],
        )
        for outcome in ("captured", "sent", "dropped", "failed"):
            family.add_metric([outcome], getattr(self, outcome))
        yield family
        yield GaugeMetricFamily(
            "appkit_error_queue_depth", "Error events waiting to be sent", value=self._queue.qsize()
        )


class ErrorHandler(logging.Handler):
    """A logging handler turning error records into events. ``extra={"code": ...}`` sets the code."""

    def __init__(self, reporter: ErrorReporter, level: int = logging.ERROR) -> None:
        super().__init__(level)
        self.reporter = reporter

    def emit(self, record: logging.LogRecord) -> None:
        reporter = self.reporter
        if reporter._in_worker():
            return
        try:
            exc = record.exc_info[1] if record.exc_info else None
            context = {
                k: v for k, v in vars(record).items() if k not in _RECORD_FIELDS and k != "code"
            }
            code = getattr(record, "code", None)
            severity = _LEVELS.get(
                record.levelno, "error" if record.levelno > logging.ERROR else "info"
            )
            reporter.capture(
                reporter.event(
                    record.getMessage(),
                    severity=severity,
                    code=code,
                    exc=exc,
                    context=context,
                    logger=record.name,
                )
            )
        except Exception:
            reporter.failed += 1


def capture_errors(
    dsn: str | None = None,
    *,
    app: Any = None,
    sink: Sink | None = None,
    logger: logging.Logger | None = None,
    level: int = logging.ERROR,
    **options: Any,
) -> ErrorReporter:
    """Send error records of ``logger`` (default: root) and, given a Starlette/FastAPI ``app``,
    its unhandled exceptions to ``dsn`` (default ``$TOWER_DSN`` or ``$SENTRY_DSN``) or ``sink``."""
    from controltower.appkit._sinks import DsnSink

    if sink is None:
        dsn = dsn or os.environ.get("TOWER_DSN") or os.environ.get("SENTRY_DSN")
        if not dsn:
            from controltower.exceptions import IngestError

            raise IngestError(
                "capture_errors: no DSN",
                hint="pass dsn=... or set TOWER_DSN (http://<key>@host:port/<project_id>)",
            )
        sink = DsnSink(dsn)
    reporter = ErrorReporter(sink, **options)
    reporter.attach(logger, level)
    if app is not None and hasattr(app, "add_middleware"):
        app.add_middleware(ErrorCaptureMiddleware, reporter=reporter)
    return reporter


class ErrorCaptureMiddleware:
    """ASGI middleware reporting unhandled exceptions (then re-raising them).

    Servers log those on their own loggers (``uvicorn.error``), which do not
    reach the root logger; this catches them where they happen, with the route.
    """

    def __init__(self, app: Any, *, reporter: ErrorReporter) -> None:
        self.app = app
        self.reporter = reporter

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        try:
            await self.app(scope, receive, send)
        except Exception as exc:
            if scope["type"] in ("http", "websocket"):
                route = getattr(scope.get("route"), "path", None)
                context = {"method": scope.get("method"), "path": scope.get("path"), "route": route}
                reporter = self.reporter
                reporter.capture(
                    reporter.event(
                        f"unhandled {type(exc).__name__}: {exc}",
                        code="unhandled_exception",
                        exc=exc,
                        context=context,
                        logger="asgi",
                    )
                )
            raise
